// cadre/detail/wire/code_ref.hpp — a CodeRef (module build-id + offset) as written in a record, and read back.
//
//   [u8 main][u8 id_len ≤ 32][id_len bytes of build-id][u64 offset][u32 path_len ≤ 4096][path]
//
// Self-delimiting: its own bytes say where it ends, so a reader can step over one without copying it
// and compare it byte for byte with one it saw before.
#pragma once

#include <cadre/detail/wire/module_ref.hpp>
#include <cadre/detail/wire/wire.hpp>
#include <cadre/errors.hpp>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace cadre::detail {

/// Longest module path a code reference may carry.
inline constexpr std::size_t kMaxCodeRefPath = 4096;

inline void put_code_ref(Writer& w, const CodeRef& r) {
  w.put(std::uint8_t(r.main));
  w.put(r.id.len);
  w.bytes(r.id.bytes.data(), r.id.len);
  w.put(r.offset);
  w.str(r.path);
}

/// A code reference as read from a record: its path still points into the record's bytes.
struct CodeRefView {
  BuildId id;
  std::uint64_t offset = 0;
  bool main = false;
  std::string_view path;

  [[nodiscard]] CodeRef owned() const { return CodeRef{id, offset, main, std::string(path)}; }
};

[[noreturn, gnu::cold, gnu::noinline]] inline void bad_build_id_length(unsigned len) {
  throw decode_error("code reference with a build-id of " + std::to_string(len) + " bytes");
}

[[nodiscard]] inline CodeRefView read_code_ref(Reader& r) {
  CodeRefView c;
  c.main = r.get<std::uint8_t>() != 0;
  c.id.len = r.get<std::uint8_t>();
  if (c.id.len > c.id.bytes.size()) bad_build_id_length(c.id.len);
  auto b = r.take(c.id.len);
  std::memcpy(c.id.bytes.data(), b.data(), c.id.len);
  c.offset = r.get<std::uint64_t>();
  c.path = r.str(kMaxCodeRefPath);
  return c;
}

[[nodiscard]] inline CodeRef get_code_ref(Reader& r) { return read_code_ref(r).owned(); }

/// Steps over a code reference, checking it as read_code_ref does, and returns its bytes: what an
/// engine compares with the last reference it resolved before decoding anything.
[[nodiscard]] inline std::span<const std::byte> take_code_ref(Reader& r) {
  const auto head = r.take(2);  // main, build-id length
  const auto id_len = std::to_integer<unsigned>(head[1]);
  if (id_len > BuildId{}.bytes.size()) bad_build_id_length(id_len);
  r.take(id_len + sizeof(std::uint64_t));
  const std::string_view path = r.str(kMaxCodeRefPath);
  return {head.data(), reinterpret_cast<const std::byte*>(path.data()) + path.size()};
}

/// The code reference whose bytes take_code_ref returned.
[[nodiscard]] inline CodeRef code_ref_of(std::span<const std::byte> bytes) {
  Reader r(bytes);
  return get_code_ref(r);
}

}  // namespace cadre::detail
