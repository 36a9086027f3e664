// Runtime-owned receive buffers.
//
//   auto chunk = co_await stream.receive();   // result<buffer>; empty at EOF
//   co_await stream.write_all(chunk->bytes());
//
// A connection that waits for data holds no buffer at all: the runtime hands
// one out only when bytes are there (on io_uring the kernel picks it from a
// provided buffer ring; on select and epoll the loop lends one after the
// socket became readable). So ten thousand idle connections cost their
// frames and nothing more, and a busy connection returns its buffer as soon
// as the `buffer` is destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace switchboard {

namespace detail {

// Fixed-size chunks handed out by index, at most `limit` at once; freed
// chunks are reused newest first, so a lightly loaded server keeps touching
// the same few pages.
class buffer_pool {
 public:
  static constexpr std::size_t chunk_size = 16 * 1024;
  static constexpr std::uint16_t no_chunk = 0xffff;
  static constexpr std::size_t default_limit = 16'384;  // 256 MiB
  static constexpr std::size_t max_limit = no_chunk;    // ids are 16-bit

  // Caps the chunks lent at once (1 to max_limit); set before the first acquire().
  void set_limit(std::size_t chunks) noexcept { limit_ = chunks; }
  std::size_t limit() const noexcept { return limit_; }

  // A free chunk's index (growing the pool up to its limit), or no_chunk.
  std::uint16_t acquire();
  void release(std::uint16_t id) noexcept { free_.push_back(id); }
  // True when acquire() would return a chunk.
  bool can_lend() const noexcept { return !free_.empty() || created_ < limit_; }
  std::byte* data(std::uint16_t id) noexcept {
    return slabs_[id / chunks_per_slab].get() + (id % chunks_per_slab) * chunk_size;
  }

 private:
  static constexpr std::size_t chunks_per_slab = 64;
  void grow();
  std::vector<std::unique_ptr<std::byte[]>> slabs_;
  std::vector<std::uint16_t> free_;
  std::size_t created_ = 0;
  std::size_t limit_ = default_limit;
};

}  // namespace detail

// Bytes received into a runtime-owned chunk; the chunk goes back to the pool
// when this is destroyed. Move-only.
class buffer {
 public:
  buffer() noexcept = default;
  buffer(detail::buffer_pool* pool, std::uint16_t id, std::size_t size) noexcept
      : pool_(pool), id_(id), size_(size) {}
  buffer(buffer&& other) noexcept
      : pool_(std::exchange(other.pool_, nullptr)), id_(other.id_), size_(std::exchange(other.size_, 0)) {}
  buffer& operator=(buffer&& other) noexcept {
    if (this != &other) {
      reset();
      pool_ = std::exchange(other.pool_, nullptr);
      id_ = other.id_;
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~buffer() { reset(); }

  std::span<const std::byte> bytes() const noexcept {
    return pool_ ? std::span<const std::byte>(pool_->data(id_), size_) : std::span<const std::byte>();
  }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

 private:
  void reset() noexcept {
    if (pool_) pool_->release(id_);
    pool_ = nullptr;
    size_ = 0;
  }
  detail::buffer_pool* pool_ = nullptr;
  std::uint16_t id_ = 0;
  std::size_t size_ = 0;
};

}  // namespace switchboard
