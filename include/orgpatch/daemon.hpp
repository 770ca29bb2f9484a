/// `orgpatchd serve`: the engine of `run`, fed by a spool directory and, with
/// `serve.redis.url`, a Redis stream, until stopped; and `orgpatchd submit`,
/// which drops a job file into the spool (see sources/redis_source.hpp for the
/// stream).
///
/// Spool (DESIGN.md §6): a file appears in `incoming/` (inotify, and a scan at
/// start), is claimed by an atomic rename into `processing/`, run with its
/// results beside it, and moved with them to `done/`; files left in
/// `processing/` by a stop or a crash are resumed at start. A file that cannot
/// run at all (unreadable; a results log beside it from another input) goes to
/// `failed/` with NAME.error saying why, and the others go on; when the API
/// refuses the token or TLS fails, the file waits in `processing/` and is tried
/// again every minute. Symbolic links in the spool are never followed.
///
/// Stream: one run that does not end, beside the spool's files, its results in
/// `output.results`/`output.dead_letter` (default: stream.results.jsonl and
/// stream.failed.jsonl in the folder above the spool). With Redis, the rate
/// limits are shared by every instance (and by the spool's files) through Redis.
/// When the run stops on its own (the token refused, TLS), it starts again a
/// minute later; what it held is read back from the consumer's pending list.
///
/// systemd: READY=1 once the config is loaded and the sources are open (Redis
/// may still be unreachable: STATUS= says so), STATUS= every few seconds,
/// RELOADING=1 on SIGHUP (the config is read again for the next files and the
/// stream's run starts again with it; every results file is reopened for
/// logrotate), STOPPING=1 on SIGTERM (requests in flight finish within
/// shutdown_grace_s; a file is resumed at the next start, a stream's unfinished
/// entries are taken over once idle for claim_idle_ms, by another instance or
/// by this one started again),
/// WATCHDOG=1 at half of WATCHDOG_USEC.
///
/// Metrics: Prometheus text at `serve.metrics_listen` (none when empty) for the
/// life of the service, counted over every run it made (docs/metrics.md); a
/// port in use stops it at start (exit 1, before READY=1).
#pragma once

#include "orgpatch/config.hpp"

#include <optional>
#include <string>

namespace orgpatch {

struct serve_options {
  config cfg;
  std::optional<std::string> config_path;  ///< read again on SIGHUP
  std::string token;
};

/// Runs the service until SIGTERM/SIGINT; returns the exit status (0 after a
/// clean stop, 1 when the spool cannot be used).
int serve(serve_options options);

/// Copies `file` into `spool_dir`/incoming/ atomically (a temporary name, then a
/// rename), under its own name or, when that is taken, with a timestamp
/// suffix. Returns the path it was queued as. Throws std::runtime_error.
std::string submit_to_spool(const std::string& spool_dir, const std::string& file);

}  // namespace orgpatch
