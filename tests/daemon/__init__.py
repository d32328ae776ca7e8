# A package, so this suite's conftest is imported as daemon.conftest and neither takes nor
# needs the plain name `conftest` that other suites in the same pytest run import helpers from.
