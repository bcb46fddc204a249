// cadre/namespace.hpp — an engine's namespace: the named values that push, pull, scatter and execute work on.
#pragma once

#include <cadre/codec.hpp>
#include <cadre/detail/segment.hpp>
#include <cadre/detail/wire.hpp>
#include <cadre/errors.hpp>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cadre {

/// The values held by one engine, by name. Only code running on that engine touches it (engine-side
/// functions receive it as `cadre::Namespace&`, or call `cadre::this_engine::ns()`).
///
///     all.execute([](cadre::Namespace& ns) {
///       auto a = ns.view<std::vector<int>>("a");          // std::span<const int>, no copy
///       ns.set("asum", std::accumulate(a.begin(), a.end(), 0));
///     });
///
/// Large values (64 KiB and more) live in the cluster's shared segment, so the client pulls and
/// gathers them without the engine copying a byte.
class Namespace {
 public:
  Namespace() = default;
  Namespace(detail::Segment* seg, int engine_id) noexcept : seg_(seg), id_(engine_id) {}
  Namespace(const Namespace&) = delete;
  Namespace& operator=(const Namespace&) = delete;
  ~Namespace() { clear(); }

  /// Stores a copy of value under name, replacing any previous value.
  template <class T>
  void set(std::string_view name, const T& value) {
    const std::size_t n = detail::typed_size(value);
    if (seg_ && n >= kBlockThreshold) {
      const std::uint64_t off = seg_->alloc_block(n, detail::engine_tag(std::uint32_t(id_)), detail::kNsRef);
      std::byte* p = seg_->block_data(off);
      std::vector<std::byte> tmp;
      tmp.reserve(n);
      detail::encode_typed(value, tmp);
      std::memcpy(p, tmp.data(), tmp.size());
      adopt_block(name, off, 0, n);
      return;
    }
    Stored s;
    detail::encode_typed(value, s.local);
    s.data = s.local.data();
    s.len = s.local.size();
    put(name, std::move(s));
  }

  /// A copy of the value under name. Throws name_error if absent, type_error if it holds another type.
  template <class T>
  T get(std::string_view name) const {
    return detail::decode_typed<T>(typed(name), context(name));
  }

  /// The value in place: `std::span<const E>` for `std::vector<E>`/`std::array`, `Eigen::Map<const M>` for
  /// Eigen types, `const T&` otherwise. Valid until name is set again or erased.
  template <class T>
  decltype(auto) view(std::string_view name) const {
    const Stored& s = find_or_throw(name);
    const detail::TypedView v = detail::parse_typed({s.data, s.len});
    if (v.type_hash != type_hash<T>()) throw type_error(std::string(v.type), type_name<T>(), context(name));
    if constexpr (is_raw_array_v<T>) {
      return cadre::view<T>(v.payload);
    } else {
      if (!s.cache || s.cache_hash != type_hash<T>()) {
        s.cache = std::make_shared<T>(decode<T>(v.payload));
        s.cache_hash = type_hash<T>();
      }
      return static_cast<const T&>(*static_cast<const T*>(s.cache.get()));
    }
  }

  bool contains(std::string_view name) const { return values_.find(name) != values_.end(); }

  /// Removes name; true if it was there.
  bool erase(std::string_view name) {
    auto it = values_.find(name);
    if (it == values_.end()) return false;
    drop(it->second);
    values_.erase(it);
    return true;
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : values_) out.push_back(k);
    return out;
  }

  /// The structural type name stored under name (e.g. "vec<f64>").
  std::string type_of(std::string_view name) const { return std::string(typed(name).type); }

  int engine_id() const noexcept { return id_; }

  void clear() {
    for (auto& [k, v] : values_) drop(v);
    values_.clear();
  }

  // ---- used by the engine loop --------------------------------------------------------------

  static constexpr std::size_t kBlockThreshold = 64 * 1024;

  /// Takes over one namespace reference of a segment block whose bytes [at, at+len) are a typed value.
  void adopt_block(std::string_view name, std::uint64_t block, std::size_t at, std::size_t len) {
    Stored s;
    s.block = block;
    s.data = seg_->block_data(block) + at;
    s.len = len;
    put(name, std::move(s));
  }

  /// Stores a copy of a typed value's bytes.
  void store_bytes(std::string_view name, std::span<const std::byte> typed_bytes) {
    detail::parse_typed(typed_bytes);  // validate before accepting
    Stored s;
    s.local.assign(typed_bytes.begin(), typed_bytes.end());
    s.data = s.local.data();
    s.len = s.local.size();
    put(name, std::move(s));
  }

  /// Where a value's typed bytes are: in a segment block (block != 0, offset `at` into its data) or local.
  struct Location {
    std::uint64_t block;
    std::size_t at;
    std::span<const std::byte> bytes;
  };
  Location locate(std::string_view name) const {
    const Stored& s = find_or_throw(name);
    return {s.block, s.block ? std::size_t(s.data - seg_->block_data(s.block)) : 0, {s.data, s.len}};
  }

  detail::TypedView typed(std::string_view name) const {
    const Stored& s = find_or_throw(name);
    return detail::parse_typed({s.data, s.len});
  }

 private:
  struct Stored {
    std::vector<std::byte> local;  // operator new aligns to 16: in-place array views stay aligned
    std::uint64_t block = 0;
    const std::byte* data = nullptr;
    std::size_t len = 0;
    mutable std::shared_ptr<void> cache;  // decoded value for view<T> of non-array types
    mutable std::uint64_t cache_hash = 0;
  };

  void put(std::string_view name, Stored&& s) {
    auto it = values_.find(name);
    if (it == values_.end()) {
      values_.emplace(std::string(name), std::move(s));
    } else {
      drop(it->second);
      it->second = std::move(s);
    }
  }

  void drop(Stored& s) noexcept {
    if (s.block && seg_) {
      try {
        seg_->release(s.block, detail::kNsRef);
      } catch (...) {
        // A corrupt block header: leave the pages to the dead-process reclaim rather than crash.
      }
    }
    s.block = 0;
  }

  const Stored& find_or_throw(std::string_view name) const {
    auto it = values_.find(name);
    if (it == values_.end()) throw name_error(id_, std::string(name));
    return it->second;
  }

  std::string context(std::string_view name) const {
    return "value '" + std::string(name) + "' on engine " + std::to_string(id_);
  }

  detail::Segment* seg_ = nullptr;
  int id_ = -1;
  std::map<std::string, Stored, std::less<>> values_;
};

}  // namespace cadre
