// The digests a files server hands out, and the hashing behind them.
//
// Hashing a file is CPU work on the loop, and a client can ask for a 1 TiB
// file, so it is shared, capped, cancelled and cut into pieces:
//  - one job per file version (file_identity), shared by every request for
//    it; a finished digest goes into an LRU cache;
//  - one task (run()) hashes all jobs, one piece per loop turn: however many
//    files are hashed, a turn of the loop spends at most one piece on it, so
//    every other client goes on, on every backend;
//  - at most `max_running` jobs are hashed at once, the ones with the fewest
//    bytes left (a small file is not stuck behind big ones); the others wait
//    with their progress kept;
//  - a job lives only while a ticket waits for it: the last ticket to go
//    (its client left, timed out or was forgotten) cancels it. A job holds no
//    descriptor of its own: it reads through one of its tickets' files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include <switchboard/cancel.hpp>
#include <switchboard/result.hpp>
#include <switchboard/task.hpp>

#include "digest.hpp"

namespace switchboard::services::files {

class digest_service {
 public:
  // Bytes hashed per loop turn at most: about a millisecond of SHA-256.
  static constexpr std::size_t piece_size = 256 * 1024;

  struct settings {
    std::size_t max_running = 4;      // files hashed at once (--max-hashes)
    std::size_t cache_capacity = 4096;  // digests remembered, about 100 bytes each
  };

  // What the SIGUSR1 line shows.
  struct counters {
    std::uint64_t started = 0;    // jobs begun (a request for a digest neither cached nor being computed)
    std::uint64_t finished = 0;   // jobs that produced a digest
    std::uint64_t failed = 0;     // jobs whose file could not be read, or changed meanwhile
    std::uint64_t cancelled = 0;  // jobs nobody waited for any more
    std::uint64_t bytes = 0;      // bytes hashed
  };

  class ticket;

  explicit digest_service(settings limits);
  digest_service() : digest_service(settings{}) {}
  // Tickets must be gone, and run() finished.
  ~digest_service();
  digest_service(const digest_service&) = delete;
  digest_service& operator=(const digest_service&) = delete;

  // The digest of file version `id`: ready at once when cached; otherwise
  // the ticket joins the job for `id`, or starts one. The job reads through
  // `fd`, which the caller keeps open while the ticket lives.
  ticket request(int fd, const file_identity& id);

  // Hashes what tickets wait for, one piece per loop turn, until cancelled;
  // then the jobs left fail with operation_canceled. Tickets become ready
  // only while it runs.
  task<void> run();

  // Jobs being hashed now, and waiting for a turn.
  std::size_t running() const noexcept;
  std::size_t queued() const noexcept { return jobs_.size() - running(); }
  const counters& totals() const noexcept { return totals_; }
  const settings& limits() const noexcept { return limits_; }

 private:
  struct job;
  void leave(const std::shared_ptr<job>& j, int fd) noexcept;
  // The next job to hash a piece of, taking turns among the running ones.
  job* pick();
  void hash_piece(job& j);
  void finish(job& j, result<digest> outcome);

  settings limits_;
  digest_cache cache_;
  std::unordered_map<file_identity, std::shared_ptr<job>, file_identity_hash> jobs_;
  std::vector<job*> running_;  // chosen again whenever jobs_ changed (reselect_)
  bool reselect_ = false;
  std::size_t next_ = 0;       // round-robin position in running_
  std::vector<std::byte> piece_;
  event work_;                 // set while jobs_ is not empty
  counters totals_;
};

// A claim on one file version's digest. Move-only; destroying it leaves the
// job, and the last ticket to leave cancels it.
class digest_service::ticket {
 public:
  ticket() = default;
  ~ticket();
  ticket(ticket&& other) noexcept;
  ticket& operator=(ticket&& other) noexcept;
  ticket(const ticket&) = delete;
  ticket& operator=(const ticket&) = delete;

  // False for a default-constructed or moved-from ticket.
  explicit operator bool() const noexcept { return cached_ || job_; }
  bool ready() const noexcept;
  // When ready: the digest, or why the file could not be hashed (io_error:
  // it ended early or changed meanwhile; operation_canceled: the server stops).
  result<digest> outcome() const;
  // Waits until ready; only for a ticket that is not ready yet.
  event::wait_operation wait() noexcept;

 private:
  friend class digest_service;
  digest_service* service_ = nullptr;
  std::optional<digest> cached_;
  std::shared_ptr<job> job_;
  int fd_ = -1;
};

}  // namespace switchboard::services::files
