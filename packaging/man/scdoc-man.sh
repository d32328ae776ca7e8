#!/bin/sh
# Turns an scdoc page into roff: scdoc < IN, with hyphenation off and a ragged right margin.
# scdoc's preamble asks for both, but .TH switches them back on, and hyphenated identifiers
# (Provision-ing.User.Create) are hard to read and to copy. Usage: scdoc-man.sh SCDOC IN OUT
set -eu
"$1" < "$2" > "$3.tmp"
awk '{ print } /^\.TH / { print ".nh"; print ".ad l" }' "$3.tmp" > "$3"
rm -f "$3.tmp"
