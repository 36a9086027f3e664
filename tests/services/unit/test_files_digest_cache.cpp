// The files server's cache of digests: which versions it remembers.
#include <catch2/catch.hpp>

#include "files/digest.hpp"

using namespace switchboard::services::files;

namespace {

file_identity version(ino_t inode) { return {1, inode, 100, 5}; }

digest digest_of(int n) {
  digest d{};
  d[0] = static_cast<std::byte>(n);
  return d;
}

}  // namespace

TEST_CASE("the digest cache forgets the least recently used version, not one asked for again",
          "[unit][files]") {
  digest_cache cache(3);
  cache.store(version(1), digest_of(1));
  cache.store(version(2), digest_of(2));
  cache.store(version(3), digest_of(3));
  CHECK(cache.find(version(1)) == digest_of(1));  // 1 is in use: 2 is now the oldest
  cache.store(version(4), digest_of(4));
  CHECK(cache.size() == 3);
  CHECK_FALSE(cache.find(version(2)));
  CHECK(cache.find(version(1)) == digest_of(1));
  CHECK(cache.find(version(3)) == digest_of(3));
  CHECK(cache.find(version(4)) == digest_of(4));
}

TEST_CASE("a changed file is another version: its old digest is not handed out", "[unit][files]") {
  digest_cache cache(8);
  const file_identity before{1, 7, 100, 5};
  cache.store(before, digest_of(1));
  for (const file_identity& after : {file_identity{1, 7, 99, 5}, file_identity{1, 7, 100, 6},
                                     file_identity{2, 7, 100, 5}, file_identity{1, 8, 100, 5}}) {
    CHECK_FALSE(cache.find(after));
  }
  CHECK(cache.find(before) == digest_of(1));
}
