#include "switchboard/buffer.hpp"

#include <algorithm>

namespace switchboard::detail {

void buffer_pool::grow() {
  if (created_ >= limit_) return;
  const std::size_t first = created_;
  const std::size_t count = std::min(chunks_per_slab, limit_ - created_);
  // Not zero-filled: a chunk is read only after a receive wrote it, and
  // untouched pages stay out of the resident set.
  slabs_.push_back(std::make_unique_for_overwrite<std::byte[]>(chunks_per_slab * chunk_size));
  created_ += count;
  // Pushed in reverse so that the lowest index is handed out first.
  for (std::size_t i = count; i-- > 0;) {
    free_.push_back(static_cast<std::uint16_t>(first + i));
  }
}

std::uint16_t buffer_pool::acquire() {
  if (free_.empty()) grow();
  if (free_.empty()) return no_chunk;
  const std::uint16_t id = free_.back();
  free_.pop_back();
  return id;
}

}  // namespace switchboard::detail
