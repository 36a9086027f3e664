#include "digest.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <new>

#include <fmt/core.h>
#include <openssl/evp.h>
#include <switchboard/time.hpp>

namespace switchboard::services::files {

sha256::sha256() : context_(EVP_MD_CTX_new()) {
  if (context_ == nullptr || EVP_DigestInit_ex(context_, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(context_);
    throw std::bad_alloc();
  }
}

sha256::~sha256() { EVP_MD_CTX_free(context_); }

void sha256::update(std::span<const std::byte> bytes) {
  EVP_DigestUpdate(context_, bytes.data(), bytes.size());
}

digest sha256::finish() {
  digest d{};
  unsigned size = 0;
  EVP_DigestFinal_ex(context_, reinterpret_cast<unsigned char*>(d.data()), &size);
  return d;
}

std::string to_hex(const digest& d) {
  std::string hex;
  for (std::byte b : d) hex += fmt::format("{:02x}", std::to_integer<unsigned>(b));
  return hex;
}

task<result<digest>> hash_file(int fd, std::uint64_t size) {
  constexpr std::size_t piece = 1 << 20;
  std::vector<std::byte> buf(piece);
  sha256 hash;
  for (std::uint64_t done = 0; done < size;) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(piece, size - done));
    const ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) co_return errno_code(errno);
    if (n == 0) co_return std::make_error_code(std::errc::io_error);  // shrank meanwhile
    hash.update(std::span(buf).first(static_cast<std::size_t>(n)));
    done += static_cast<std::uint64_t>(n);
    // A zero-length sleep goes through the timer heap: every other ready
    // coroutine runs before this one hashes its next MiB.
    if (auto cancelled = co_await sleep_for(std::chrono::nanoseconds(0))) co_return cancelled;
  }
  co_return hash.finish();
}

file_identity file_identity::of(const struct stat& info) {
  return {info.st_dev, info.st_ino, static_cast<std::uint64_t>(info.st_size),
          static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec};
}

std::optional<file_identity> file_identity::now(int fd) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) return std::nullopt;
  return of(info);
}

std::size_t file_identity_hash::operator()(const file_identity& id) const noexcept {
  std::size_t h = std::hash<std::uint64_t>{}(id.inode);
  for (const std::uint64_t part : {static_cast<std::uint64_t>(id.device), id.size,
                                   static_cast<std::uint64_t>(id.modified_ns)}) {
    h ^= std::hash<std::uint64_t>{}(part) + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2);
  }
  return h;
}

std::optional<digest> digest_cache::find(const file_identity& id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  it->second.used = ++uses_;
  return it->second.value;
}

void digest_cache::store(const file_identity& id, const digest& d) {
  if (capacity_ == 0) return;
  if (!entries_.contains(id) && entries_.size() >= capacity_) {
    // A scan, but only when a new digest was computed: that cost a whole
    // file's hashing, next to which this is nothing.
    auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
      return a.second.used < b.second.used;
    });
    entries_.erase(oldest);
  }
  entries_[id] = {d, ++uses_};
}

}  // namespace switchboard::services::files
