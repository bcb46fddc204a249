// cadre/detail/wire/wire.hpp — record payloads: a bounds-checked reader/writer and the typed-value envelope.
//
// A typed value is a codec payload prefixed with the structural type it was encoded from:
//   [u64 type_hash][u32 name_len][u32 payload_off][u64 payload_len][type name][pad to 16][payload]
// payload_off is relative to the envelope start, which is always 16-byte aligned, so raw arrays in
// the payload can be read in place.
#pragma once

#include <cadre/codec.hpp>
#include <cadre/errors.hpp>

#include <cstddef>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cadre::detail {

/// Appends to a byte vector; positions are offsets from the vector's start.
class Writer {
 public:
  explicit Writer(std::vector<std::byte>& out) noexcept : out_(out) {}
  template <class T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes(&v, sizeof v);
  }
  void bytes(const void* p, std::size_t n) {
    // insert, not resize + memcpy: no zero-fill of bytes that are overwritten at once.
    const auto* b = static_cast<const std::byte*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  void str(std::string_view s) {
    put(std::uint32_t(s.size()));
    bytes(s.data(), s.size());
  }
  void align(std::size_t a) { out_.resize((out_.size() + a - 1) / a * a); }
  std::size_t size() const noexcept { return out_.size(); }
  std::vector<std::byte>& buffer() noexcept { return out_; }

 private:
  std::vector<std::byte>& out_;
};

/// Reads a byte span; every read is bounds-checked and throws decode_error when it would overrun.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) noexcept : in_(in) {}
  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    std::memcpy(&v, take(sizeof v).data(), sizeof v);
    return v;
  }
  std::span<const std::byte> take(std::size_t n) {
    if (n > in_.size() - pos_) [[unlikely]]
      truncated(n);
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::string_view str(std::size_t max = 1 << 20) {
    const auto n = get<std::uint32_t>();
    if (n > max) [[unlikely]]
      too_long(n, max);
    auto s = take(n);
    return {reinterpret_cast<const char*>(s.data()), s.size()};
  }
  void align(std::size_t a) {
    const std::size_t next = (pos_ + a - 1) / a * a;
    if (next > in_.size()) throw decode_error("record truncated at alignment padding");
    pos_ = next;
  }
  std::size_t pos() const noexcept { return pos_; }
  std::size_t left() const noexcept { return in_.size() - pos_; }

 private:
  // Out of line: the messages' string building would otherwise be inlined into every read.
  [[noreturn, gnu::cold, gnu::noinline]] void truncated(std::size_t n) const {
    throw decode_error("record truncated: needed " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) + " of " +
                       std::to_string(in_.size()));
  }
  [[noreturn, gnu::cold, gnu::noinline]] static void too_long(std::size_t n, std::size_t max) {
    throw decode_error("string of " + std::to_string(n) + " bytes exceeds the limit of " + std::to_string(max));
  }

  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
};

struct EnvelopeHeader {
  std::uint64_t type_hash;
  std::uint32_t name_len;
  std::uint32_t payload_off;
  std::uint64_t payload_len;
};
static_assert(sizeof(EnvelopeHeader) == 24);

inline std::size_t envelope_payload_offset(std::size_t name_len) noexcept {
  return (sizeof(EnvelopeHeader) + name_len + 15) / 16 * 16;
}

/// Writes the header of an envelope (type hash, type name) whose payload is payload_len bytes; returns
/// the payload's offset from out.
inline std::size_t write_envelope_header(std::byte* out, std::uint64_t hash, std::string_view type, std::uint64_t payload_len) noexcept {
  const EnvelopeHeader h{hash, std::uint32_t(type.size()), std::uint32_t(envelope_payload_offset(type.size())), payload_len};
  std::memcpy(out, &h, sizeof h);
  std::memcpy(out + sizeof h, type.data(), type.size());
  return h.payload_off;
}

/// A typed value read from a span (not owning).
struct TypedView {
  std::uint64_t type_hash = 0;
  std::string_view type;
  std::span<const std::byte> payload;
};

/// Parses and validates an envelope. `bytes` must start 16-byte aligned for in-place array views.
inline TypedView parse_typed(std::span<const std::byte> bytes) {
  if (bytes.size() < sizeof(EnvelopeHeader)) throw decode_error("typed value truncated: " + std::to_string(bytes.size()) + " bytes");
  EnvelopeHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);  // copy the header out of shared memory, then validate the copy
  if (h.name_len > 4096 || h.payload_off != envelope_payload_offset(h.name_len) || h.payload_off > bytes.size() ||
      h.payload_len > bytes.size() - h.payload_off)
    throw decode_error("typed value has a corrupt header (name " + std::to_string(h.name_len) + " bytes, payload " +
                       std::to_string(h.payload_len) + " bytes at " + std::to_string(h.payload_off) + ", in " +
                       std::to_string(bytes.size()) + " bytes)");
  TypedView v;
  v.type_hash = h.type_hash;
  v.type = {reinterpret_cast<const char*>(bytes.data() + sizeof h), h.name_len};
  v.payload = bytes.subspan(h.payload_off, h.payload_len);
  return v;
}

/// A type head: the envelope's type part alone, for values whose payload travels separately
/// (a namespace value in a shared block is sent as head + a view of its payload: no copy).
///   [u64 type_hash][u32 name_len][name]
inline void put_type_head(std::vector<std::byte>& out, std::uint64_t hash, std::string_view name) {
  Writer w(out);
  w.put(hash);
  w.str(name);
}

inline TypedView typed_from_head(std::span<const std::byte> head, std::span<const std::byte> payload) {
  Reader r(head);
  TypedView v;
  v.type_hash = r.get<std::uint64_t>();
  v.type = r.str(4096);
  v.payload = payload;
  return v;
}

/// Appends the envelope of a raw array given as parts: its type, element count and element bytes.
inline void encode_raw_envelope(std::vector<std::byte>& out, std::uint64_t hash, std::string_view type, std::uint64_t count,
                                std::span<const std::byte> elements) {
  const std::size_t start = out.size(), payload = kRawHeader + elements.size();
  out.resize(start + envelope_payload_offset(type.size()) + payload);
  std::byte* p = out.data() + start;
  std::byte* dst = write_raw_header(p + write_envelope_header(p, hash, type, payload), count, 0);
  if (!elements.empty()) std::memcpy(dst, elements.data(), elements.size());
}

/// Output trailer, after a completion's payload when the task printed something:
///   [stdout bytes][stderr bytes][u64 stdout_len][u64 stderr_len]
inline void put_output_trailer(std::vector<std::byte>& out, std::string_view so, std::string_view se) {
  Writer w(out);
  w.bytes(so.data(), so.size());
  w.bytes(se.data(), se.size());
  w.put(std::uint64_t(so.size()));
  w.put(std::uint64_t(se.size()));
}

/// Splits a payload that ends with an output trailer; returns the payload without it.
inline std::span<const std::byte> take_output_trailer(std::span<const std::byte> bytes, std::string& so, std::string& se) {
  if (bytes.size() < 16) throw decode_error("output trailer truncated");
  std::uint64_t n[2];
  std::memcpy(n, bytes.data() + bytes.size() - 16, 16);
  if (n[0] > bytes.size() - 16 || n[1] > bytes.size() - 16 - n[0]) throw decode_error("output trailer corrupt");
  const std::size_t body = bytes.size() - 16 - n[0] - n[1];
  so.assign(reinterpret_cast<const char*>(bytes.data() + body), n[0]);
  se.assign(reinterpret_cast<const char*>(bytes.data() + body + n[0]), n[1]);
  return bytes.first(body);
}

/// Bytes an envelope of T's value takes.
template <class T>
std::size_t typed_size(const T& v) {
  static const std::string name = type_name<T>();
  return envelope_payload_offset(name.size()) + encoded_size(v);
}

/// Writes the envelope header of a T whose payload is payload_len bytes; returns the payload offset.
template <class T>
std::size_t write_typed_header(std::byte* out, std::size_t payload_len) {
  static const std::string name = type_name<T>();
  return write_envelope_header(out, type_hash<T>(), name, payload_len);
}

/// Writes the envelope of v into out at offset `start` (at least out.size(); the bytes before it are
/// zero-filled) and ends out there. Offsets must be multiples of 16 for in-place reads later.
template <class T>
void encode_typed_at(const T& v, std::vector<std::byte>& out, std::size_t start) {
  static const std::string name = type_name<T>();
  const std::size_t off = envelope_payload_offset(name.size());
  out.resize(start + off);
  encode(v, out);
  write_typed_header<T>(out.data() + start, out.size() - start - off);
}

/// Appends the envelope of v to out.
template <class T>
void encode_typed(const T& v, std::vector<std::byte>& out) {
  encode_typed_at(v, out, out.size());
}

/// Decodes a T from a typed value, checking its type; `context()` names the value in the error. It is
/// a function so that the name is built only for the error: not an allocation on every value.
template <class T, std::invocable Context>
T decode_typed(const TypedView& v, const Context& context) {
  if (v.type_hash != type_hash<T>()) throw type_error(std::string(v.type), type_name<T>(), std::string(context()));
  return decode<T>(v.payload);
}

template <class T>
T decode_typed(const TypedView& v, std::string_view context) {
  return decode_typed<T>(v, [context] { return std::string(context); });
}

/// Encodes a list of strings (used for error details).
inline void put_strings(Writer& w, std::initializer_list<std::string_view> ss) {
  w.put(std::uint32_t(ss.size()));
  for (auto s : ss) w.str(s);
}
inline std::vector<std::string> get_strings(std::span<const std::byte> in) {
  Reader r(in);
  const auto n = r.get<std::uint32_t>();
  if (n > 64) throw decode_error("too many strings in an error record");
  std::vector<std::string> out;
  for (std::uint32_t i = 0; i < n; ++i) out.emplace_back(r.str());
  return out;
}

}  // namespace cadre::detail
