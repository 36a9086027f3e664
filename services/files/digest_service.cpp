#include "digest_service.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>

#include <switchboard/time.hpp>

namespace switchboard::services::files {

struct digest_service::job {
  explicit job(const file_identity& version) : id(version) {}

  std::uint64_t left() const noexcept { return id.size - done; }

  file_identity id;
  sha256 hash;
  std::uint64_t done = 0;
  // The files of the tickets waiting, one entry per ticket: all are the same
  // version of the same file, so any of them will do for reading.
  std::vector<int> readers;
  std::optional<result<digest>> outcome;
  event finished;
};

digest_service::digest_service(settings limits)
    : limits_{std::max<std::size_t>(limits.max_running, 1), limits.cache_capacity},
      cache_(limits.cache_capacity) {}

digest_service::~digest_service() = default;

digest_service::ticket digest_service::request(int fd, const file_identity& id) {
  ticket claim;
  claim.service_ = this;
  if (auto known = cache_.find(id)) {
    claim.cached_ = *known;
    return claim;
  }
  std::shared_ptr<job>& shared = jobs_[id];
  if (!shared) {
    shared = std::make_shared<job>(id);
    ++totals_.started;
    reselect_ = true;
    work_.set();
  }
  shared->readers.push_back(fd);
  claim.job_ = shared;
  claim.fd_ = fd;
  return claim;
}

void digest_service::leave(const std::shared_ptr<job>& j, int fd) noexcept {
  if (j->outcome) return;
  auto reader = std::find(j->readers.begin(), j->readers.end(), fd);
  if (reader != j->readers.end()) j->readers.erase(reader);
  if (!j->readers.empty()) return;
  jobs_.erase(j->id);
  ++totals_.cancelled;
  reselect_ = true;
}

std::size_t digest_service::running() const noexcept {
  return std::min(limits_.max_running, jobs_.size());
}

digest_service::job* digest_service::pick() {
  if (reselect_) {
    // Shortest first: a small file is done in a piece or two even while big
    // ones are hashed, and a job pushed out keeps its progress.
    running_.clear();
    for (auto& [id, j] : jobs_) running_.push_back(j.get());
    const std::size_t chosen = running();
    std::partial_sort(running_.begin(), running_.begin() + static_cast<std::ptrdiff_t>(chosen),
                      running_.end(), [](const job* a, const job* b) { return a->left() < b->left(); });
    running_.resize(chosen);
    reselect_ = false;
  }
  if (running_.empty()) return nullptr;
  return running_[next_++ % running_.size()];
}

void digest_service::hash_piece(job& j) {
  const int fd = j.readers.front();
  if (j.left() > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(piece_size, j.left()));
    const ssize_t n = ::pread(fd, piece_.data(), want, static_cast<off_t>(j.done));
    if (n < 0 && errno == EINTR) return;
    if (n < 0) return finish(j, errno_code(errno));
    if (n == 0) return finish(j, std::make_error_code(std::errc::io_error));  // it shrank meanwhile
    j.hash.update(std::span(piece_).first(static_cast<std::size_t>(n)));
    j.done += static_cast<std::uint64_t>(n);
    totals_.bytes += static_cast<std::uint64_t>(n);
    if (j.left() > 0) return;
  }
  // What was read is this version's digest only if the file did not change
  // while it was read (a write that kept the size still moves the mtime).
  if (file_identity::now(fd) != j.id) return finish(j, std::make_error_code(std::errc::io_error));
  finish(j, j.hash.finish());
}

void digest_service::finish(job& j, result<digest> outcome) {
  if (outcome) {
    cache_.store(j.id, *outcome);
    ++totals_.finished;
  } else {
    ++totals_.failed;
  }
  j.outcome = std::move(outcome);
  j.finished.set();  // wakes the waiters at the next turn; their tickets keep `j` alive
  jobs_.erase(j.id);
  reselect_ = true;
}

task<void> digest_service::run() {
  piece_.resize(piece_size);
  for (;;) {
    if (jobs_.empty()) {
      work_.reset();
      if (auto stopped = co_await work_.wait()) break;
      continue;
    }
    if (job* next = pick()) hash_piece(*next);
    // A zero-length sleep goes through the timer heap: everything else that
    // is ready runs, and the backend reaps its completions, before the next
    // piece. That is what bounds hashing per loop turn, on every backend.
    if (auto stopped = co_await sleep_for(std::chrono::nanoseconds(0))) break;
  }
  for (auto& [id, j] : std::exchange(jobs_, {})) {
    j->outcome = std::make_error_code(std::errc::operation_canceled);
    j->finished.set();
    ++totals_.cancelled;
  }
  running_.clear();
  piece_ = {};
}

digest_service::ticket::~ticket() {
  if (job_) service_->leave(job_, fd_);
}

digest_service::ticket::ticket(ticket&& other) noexcept
    : service_(other.service_),
      cached_(std::exchange(other.cached_, std::nullopt)),
      job_(std::move(other.job_)),
      fd_(std::exchange(other.fd_, -1)) {}

digest_service::ticket& digest_service::ticket::operator=(ticket&& other) noexcept {
  if (this != &other) {
    if (job_) service_->leave(job_, fd_);
    service_ = other.service_;
    cached_ = std::exchange(other.cached_, std::nullopt);
    job_ = std::move(other.job_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

bool digest_service::ticket::ready() const noexcept { return cached_ || (job_ && job_->outcome); }

result<digest> digest_service::ticket::outcome() const {
  if (cached_) return *cached_;
  return *job_->outcome;
}

event::wait_operation digest_service::ticket::wait() noexcept { return job_->finished.wait(); }

}  // namespace switchboard::services::files
