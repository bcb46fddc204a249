// cadre/namespace.hpp — an engine's namespace: the named values that push, pull, scatter and execute work on.
#pragma once

#include <cadre/codec.hpp>
#include <cadre/detail/client/partition.hpp>
#include <cadre/detail/shm/segment.hpp>
#include <cadre/detail/wire/wire.hpp>
#include <cadre/errors.hpp>

#include <limits>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cadre {

class Namespace;
namespace detail {
struct NamespaceAccess;
}  // namespace detail

/// The values held by one engine, by name. Only code running on that engine touches it (engine-side
/// functions receive it as `cadre::Namespace&`, or call `cadre::this_engine::ns()`).
///
/// ```cpp
/// all.execute([](cadre::Namespace& ns) {
///   auto a = ns.view<std::vector<int>>("a");          // std::span<const int>, no copy
///   ns.set("asum", std::accumulate(a.begin(), a.end(), 0));
/// });
/// ```
///
/// Large values (64 KiB and more) live in the cluster's shared segment, so the client pulls and
/// gathers them without the engine copying a byte.
class Namespace {
 private:
  template <class T>
  struct is_std_vector : std::false_type {};
  template <class E, class A>
  struct is_std_vector<std::vector<E, A>> : std::true_type {};

 public:
  /// \cond internal
  // The engine makes its namespace; user code receives it as a `cadre::Namespace&` parameter.
  Namespace() = default;
  Namespace(detail::Segment* seg, int engine_id) noexcept : seg_(seg), id_(engine_id) {}
  /// \endcond
  Namespace(const Namespace&) = delete;
  Namespace& operator=(const Namespace&) = delete;
  ~Namespace() { clear(); }

  /// Stores a copy of value under name, replacing any previous value.
  template <class T>
  void set(std::string_view name, const T& value) {
    const std::size_t n = detail::typed_size(value);
    if (seg_ && n >= kBlockThreshold) {
      if constexpr (is_raw_array_v<T>) {
        // Straight into the block: one copy, no temporary encoding on the heap.
        const auto parts = detail::codec_impl::raw_parts(value);
        make_raw<T>(name, parts.a, parts.b, parts.n, [&](auto* out) { detail::copy_bytes(out, parts.data, parts.n * sizeof(*parts.data)); });
      } else {
        std::vector<std::byte> tmp;
        tmp.reserve(n);
        detail::encode_typed(value, tmp);
        const std::uint64_t off = seg_->alloc_block(n, detail::engine_tag(std::uint32_t(id_)), detail::kNsRef);
        std::memcpy(seg_->block_data(off), tmp.data(), tmp.size());
        adopt_block(name, off, 0, n);
      }
      return;
    }
    Stored s;
    detail::encode_typed(value, s.local);
    s.describe(detail::parse_typed(s.local));
    put(name, std::move(s));
  }

  /// Stores under name a new array of the given shape whose elements are left uninitialised, and returns
  /// it writable: `Eigen::Map<M>` for an Eigen type, `std::span<E>` for `std::vector<E>`. Compute a
  /// result straight into it and clients pull or gather it from where it was written (large arrays
  /// live in the shared segment): no copy, no heap allocation on the engine.
  ///
  /// ```cpp
  /// auto c = ns.allocate<Eigen::MatrixXd>("C", a.rows(), b.cols());
  /// c.noalias() = a * b;
  /// ```
  ///
  /// Valid until name is set again or erased. Clients see the value once the engine function returns.
  /// Throws argument_error when the shape contradicts M's fixed size, capacity_error when the
  /// segment has no room.
  template <class T>
  requires is_raw_array_v<T> && (detail::codec_impl::eigen_raw<T> || is_std_vector<T>::value)
  auto allocate(std::string_view name, std::size_t rows, std::size_t cols = 1) {
    using E = raw_element_t<T>;
    if constexpr (detail::codec_impl::eigen_raw<T>) {
      const auto fits = [](int dim, int max, std::size_t got) {
        using detail::codec_impl::kDynamic;
        return (dim == kDynamic || std::size_t(dim) == got) && (max == kDynamic || got <= std::size_t(max));
      };
      if (!fits(T::RowsAtCompileTime, T::MaxRowsAtCompileTime, rows) || !fits(T::ColsAtCompileTime, T::MaxColsAtCompileTime, cols))
        throw argument_error("Namespace::allocate: a " + std::to_string(rows) + " x " + std::to_string(cols) + " array cannot be a " +
                                    type_name<T>());
      constexpr auto kMax = std::size_t(std::numeric_limits<std::ptrdiff_t>::max());  // Eigen::Index
      if (rows > kMax || cols > kMax || (cols != 0 && rows > kMax / cols / sizeof(E)))
        throw argument_error("Namespace::allocate: " + std::to_string(rows) + " x " + std::to_string(cols) + " elements do not fit in memory");
      E* p = make_raw<T>(name, rows, cols, rows * cols, [](E*) {});
      return detail::codec_impl::raw_traits<T>::map(p, rows, cols);
    } else {
      if (cols != 1) throw argument_error("Namespace::allocate: a std::vector has one dimension; pass its size only");
      if (rows > std::numeric_limits<std::size_t>::max() / 2 / sizeof(E))
        throw argument_error("Namespace::allocate: " + std::to_string(rows) + " elements do not fit in memory");
      return std::span<E>(make_raw<T>(name, rows, 0, rows, [](E*) {}), rows);
    }
  }

  /// A copy of the value under name. Throws name_error if absent, type_error if it holds another type.
  template <class T>
  T get(std::string_view name) const {
    const Stored& s = find_or_throw(name);
    if (s.raw_count) {
      check_type<T>(s, name);
      if constexpr (is_std_vector<T>::value && is_raw_array_v<T>) {
        auto v = raw_span<typename T::value_type>(s);
        return T(v.begin(), v.end());
      }
    }
    return detail::decode_typed<T>(s.typed(), [&] { return context(name); });
  }

  /// The value in place: `std::span<const E>` for `std::vector<E>`/`std::array`, `Eigen::Map<const M>` for
  /// Eigen types, `const T&` otherwise. Valid until name is set again or erased.
  template <class T>
  decltype(auto) view(std::string_view name) const {
    const Stored& s = find_or_throw(name);
    const detail::TypedView v = s.typed();
    check_type<T>(s, name);
    if constexpr (is_raw_array_v<T>) {
      if constexpr (is_std_vector<T>::value) {
        if (s.raw_count) return raw_span<typename T::value_type>(s);
      }
      return cadre::view<T>(v.payload);
    } else {
      if (!s.cache || s.cache_hash != type_hash<T>()) {
        s.cache = std::make_shared<T>(decode<T>(v.payload));
        s.cache_hash = type_hash<T>();
      }
      return static_cast<const T&>(*static_cast<const T*>(s.cache.get()));
    }
  }

  /// True when name holds a value.
  bool contains(std::string_view name) const { return values_.find(name) != values_.end(); }

  /// Removes name; true if it was there.
  bool erase(std::string_view name) {
    auto it = values_.find(name);
    if (it == values_.end()) return false;
    drop(it->second);
    values_.erase(it);
    return true;
  }

  /// Every name that holds a value, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : values_) out.push_back(k);
    return out;
  }

  /// The structural type name stored under name (e.g. "vec<f64>").
  std::string type_of(std::string_view name) const { return std::string(typed(name).type); }

  /// The id of the engine this namespace belongs to.
  int engine_id() const noexcept { return id_; }

  /// Removes every name, freeing the values' memory in the segment.
  void clear() {
    for (auto& [k, v] : values_) drop(v);
    values_.clear();
  }

 private:
  friend struct detail::NamespaceAccess;

  // ---- for the engine loop (detail::NamespaceAccess) -----------------------------------------

  static constexpr std::size_t kBlockThreshold = 64 * 1024;

  /// Takes over one namespace reference of a segment block whose bytes [at, at+len) are a typed value.
  void adopt_block(std::string_view name, std::uint64_t block, std::size_t at, std::size_t len) {
    Stored s;
    s.block = block;
    try {
      s.describe(detail::parse_typed({seg_->block_data(block) + at, len}));
    } catch (...) {
      drop(s);
      throw;
    }
    put(name, std::move(s));
  }

  /// Takes over one namespace reference of a segment block, of which `payload` (inside the block's
  /// data) is the payload of a value of the given type: a slice of a shared array, not copied.
  void adopt_view(std::string_view name, std::uint64_t block, std::uint64_t type_hash, std::string type,
                  std::span<const std::byte> elements, std::uint64_t count) {
    Stored s;
    s.block = block;
    s.hash = type_hash;
    s.type = std::move(type);
    s.payload = elements;
    s.raw_count = count ? count : ~std::uint64_t(0);  // ~0: an empty slice
    put(name, std::move(s));
  }

  /// Stores a copy of a typed value's bytes.
  void store_bytes(std::string_view name, std::span<const std::byte> typed_bytes) {
    Stored s;
    s.local.assign(typed_bytes.begin(), typed_bytes.end());
    s.describe(detail::parse_typed(s.local));  // validates before accepting
    put(name, std::move(s));
  }

  /// Where a value is: in a segment block (block != 0; its payload starts `at` bytes into the block's
  /// data) or in engine memory (`envelope` holds its whole typed value).
  struct Location {
    std::uint64_t block;
    std::size_t at;
    detail::TypedView value;
    std::span<const std::byte> envelope;
    std::uint64_t raw_count;  // non-zero: value.payload is a raw array's elements alone (a view, no header)
  };
  Location locate(std::string_view name) const {
    const Stored& s = find_or_throw(name);
    if (s.raw_count) return {s.block, 0, s.typed(), {}, s.raw_count};
    if (s.block) return {s.block, std::size_t(s.payload.data() - seg_->block_data(s.block)), s.typed(), {}, 0};
    return {0, 0, s.typed(), s.local, 0};
  }

  detail::TypedView typed(std::string_view name) const { return find_or_throw(name).typed(); }

  struct Stored {
    std::vector<std::byte> local;  // the typed value, when held in engine memory (operator new aligns to 16)
    std::uint64_t block = 0;       // else the shared block holding it
    std::uint64_t hash = 0;
    std::string type;
    std::span<const std::byte> payload;
    std::uint64_t raw_count = 0;   // non-zero: payload holds a raw array's elements only (a shared slice)
    void describe(const detail::TypedView& v) {
      hash = v.type_hash;
      type = std::string(v.type);
      payload = v.payload;
    }
    detail::TypedView typed() const { return {hash, type, payload}; }
    mutable std::shared_ptr<void> cache;  // decoded value for view<T> of non-array types
    mutable std::uint64_t cache_hash = 0;
  };

  /// Stores under name a raw array of type T with header words [a][b] and n elements, which fill(E*)
  /// writes before the value replaces any previous one: in a block of the segment when large, else in
  /// engine memory. Returns the elements. Nothing is stored, and no block is kept, if anything throws.
  template <class T, class Fill>
  raw_element_t<T>* make_raw(std::string_view name, std::uint64_t a, std::uint64_t b, std::size_t n, const Fill& fill) {
    using E = raw_element_t<T>;
    const std::string type = type_name<T>();
    const std::uint64_t hash = type_hash<T>();
    const std::size_t payload = detail::kRawHeader + n * sizeof(E);
    const std::size_t at = detail::envelope_payload_offset(type.size()), total = at + payload;
    Stored s;
    std::byte* env;
    if (seg_ && total >= kBlockThreshold) {
      s.block = seg_->alloc_block(total, detail::engine_tag(std::uint32_t(id_)), detail::kNsRef);
      env = seg_->block_data(s.block);
    } else {
      s.local.resize(total);
      env = s.local.data();
    }
    try {
      detail::write_typed_header<T>(env, payload);
      E* elements = reinterpret_cast<E*>(detail::write_raw_header(env + at, a, b));
      s.describe({hash, type, {env + at, payload}});
      fill(elements);
      put(name, std::move(s));  // moving `local` keeps its buffer where it is
      return elements;
    } catch (...) {
      drop(s);
      throw;
    }
  }

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

  template <class T>
  void check_type(const Stored& s, std::string_view name) const {
    if (s.hash != type_hash<T>()) throw type_error(s.type, type_name<T>(), context(name));
  }

  template <class E>
  static std::span<const E> raw_span(const Stored& s) {
    const std::size_t n = s.raw_count == ~std::uint64_t(0) ? 0 : s.raw_count;
    return {reinterpret_cast<const E*>(s.payload.data()), n};
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

namespace detail {

/// What the engine loop (and the tests of it) do to a Namespace beyond the public API: take over
/// segment blocks that records carry, store received bytes, and find a value's bytes for pull.
struct NamespaceAccess {
  static constexpr std::size_t kBlockThreshold = Namespace::kBlockThreshold;
  using Location = Namespace::Location;
  static void adopt_block(Namespace& ns, std::string_view name, std::uint64_t block, std::size_t at, std::size_t len) {
    ns.adopt_block(name, block, at, len);
  }
  static void adopt_view(Namespace& ns, std::string_view name, std::uint64_t block, std::uint64_t type_hash, std::string type,
                         std::span<const std::byte> elements, std::uint64_t count) {
    ns.adopt_view(name, block, type_hash, std::move(type), elements, count);
  }
  static void store_bytes(Namespace& ns, std::string_view name, std::span<const std::byte> typed_bytes) {
    ns.store_bytes(name, typed_bytes);
  }
  static Location locate(const Namespace& ns, std::string_view name) { return ns.locate(name); }
};

}  // namespace detail

}  // namespace cadre
