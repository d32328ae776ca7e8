/* job.c: names and classes of job states (see job.h; transitions live in runner.c). */
#include "job.h"

const char *job_state_name(JobState s) {
        static const char *const names[_JOB_STATE_MAX] = {
                [JOB_NEW] = "new",                 [JOB_QUEUED] = "queued",           [JOB_WAIT_DEP] = "waiting-for-template",
                [JOB_IN_FLIGHT] = "in-flight",     [JOB_RETRY_WAIT] = "retry-wait",
                [JOB_CONFIRMING] = "confirming",   [JOB_LICENSE_WAIT] = "license-wait",
                [JOB_PAUSED] = "paused",           [JOB_DONE] = "done",
                [JOB_FAILED] = "failed",           [JOB_QUARANTINED] = "quarantined",
                [JOB_HELD] = "held",               [JOB_BLOCKED] = "blocked",
                [JOB_CANCELLED] = "cancelled",     [JOB_DEFERRED] = "deferred",
        };

        return (unsigned) s < _JOB_STATE_MAX ? names[s] : "invalid";
}

bool job_state_is_final(JobState s) {
        return s == JOB_DONE || s == JOB_FAILED || s == JOB_QUARANTINED || s == JOB_HELD ||
               s == JOB_BLOCKED || s == JOB_CANCELLED || s == JOB_DEFERRED;
}
