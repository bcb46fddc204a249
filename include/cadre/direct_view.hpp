// cadre/direct_view.hpp — DirectView: the multiplexer; does the same thing on all of its engines.
#pragma once

#include <cadre/view.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <ostream>

namespace cadre {

/// Several engines of a cluster, as `rc[cadre::all]`, `rc[cadre::slice{0, cadre::end, 2}]` or
/// `rc[std::vector<int>{3, 1}]`. Every call runs on each engine; results come back as a std::vector
/// with one element per engine, in the order of targets().
///
///     cadre::DirectView all = rc[cadre::all];
///     std::vector<pid_t> pids = all.apply_sync(::getpid);
///     all["a"] = 5;
///     std::vector<int> a = all.pull<int>("a");   // {5, 5, 5, 5}
class DirectView : public detail::BasicView<false> {
 public:
  DirectView() = default;
  DirectView(std::shared_ptr<detail::ClientCore> core, std::vector<int> ids) : BasicView(detail::Targets(std::move(core), std::move(ids))) {}
};

inline std::ostream& operator<<(std::ostream& os, const DirectView& v) {
  return os << fmt::format("<DirectView [{}]>", fmt::join(v.targets(), ", "));
}

}  // namespace cadre

template <>
struct fmt::formatter<cadre::DirectView> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(const cadre::DirectView& v, Ctx& ctx) const {
    return fmt::format_to(ctx.out(), "<DirectView [{}]>", fmt::join(v.targets(), ", "));
  }
};
