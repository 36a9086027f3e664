#include "switchboard/buffer.hpp"

namespace switchboard::detail {

void buffer_pool::grow() {
  const std::size_t first = slabs_.size() * chunks_per_slab;
  if (first + chunks_per_slab > max_chunks) return;
  // Not zero-filled (here or in reserve()): a chunk is read only after a
  // receive wrote it, and untouched pages stay out of the resident set.
  slabs_.push_back(std::make_unique_for_overwrite<std::byte[]>(chunks_per_slab * chunk_size));
  // Pushed in reverse so that the lowest index is handed out first.
  for (std::size_t i = chunks_per_slab; i-- > 0;) {
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

std::uint16_t buffer_pool::reserve(std::uint16_t count) {
  const auto first = static_cast<std::uint16_t>(slabs_.size() * chunks_per_slab);
  while (slabs_.size() * chunks_per_slab < std::size_t{first} + count) {
    slabs_.push_back(std::make_unique_for_overwrite<std::byte[]>(chunks_per_slab * chunk_size));
  }
  return first;
}

}  // namespace switchboard::detail
