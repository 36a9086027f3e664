#!/usr/bin/env bash
# Every installed header compiles on its own, as a user's only include: with
# g++ and clang++, at -O2 and -O3, under -std=c++20 -Wall -Wextra -Wpedantic
# -Werror. A header that leans on another one it does not include, or that
# drags a warning into its user's build, fails here.
#   compile_each.sh INCLUDE_DIR...    (every *.hpp below each directory)
set -uo pipefail

compilers=()
for cxx in g++ clang++; do
  command -v "$cxx" >/dev/null && compilers+=("$cxx")
done
[ ${#compilers[@]} -gt 0 ] || { echo "SKIP: no C++ compiler"; exit 77; }

includes=()
headers=()
for dir in "$@"; do
  includes+=("-I$dir")
  while IFS= read -r header; do headers+=("${header#"$dir"/}"); done < <(find "$dir" -name '*.hpp' | sort)
done

jobs=()
for header in "${headers[@]}"; do
  for cxx in "${compilers[@]}"; do
    for level in -O2 -O3; do jobs+=("$header $cxx $level"); done
  done
done

compile_one() {
  read -r header cxx level <<<"$1"
  shift
  local out
  if ! out=$(printf '#include <%s>\nint main() {}\n' "$header" |
      "$cxx" -x c++ - -c -o /dev/null -std=c++20 -Wall -Wextra -Wpedantic -Werror "$level" "$@" 2>&1); then
    printf 'FAIL: <%s> with %s %s\n%s\n' "$header" "$cxx" "$level" "$out"
    return 1
  fi
  echo "ok: <$header> with $cxx $level"
}
export -f compile_one

printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c 'compile_one "$@"' _ {} "${includes[@]}"
status=$?
echo "${#headers[@]} headers, ${#compilers[@]} compilers, 2 levels"
exit $status
