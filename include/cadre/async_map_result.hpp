// cadre/async_map_result.hpp — AsyncMapResult<R>: a map's future; iterate it to get results as they arrive.
#pragma once

#include <cadre/async_result.hpp>

#include <iterator>
#include <memory>
#include <vector>

namespace cadre {

/// The result of `view.map_async(f, xs...)`: everything AsyncResult<std::vector<R>> has, plus iteration.
/// Iterating yields the results in input order, each as soon as the task that computed it is done
/// (for an unordered load-balanced map: in completion order).
///
/// ```cpp
/// cadre::AsyncMapResult<long> amr = dview.map_async(pow10, std::views::iota(0L, 3200L));
/// for (long y : amr) use(y);    // chunk by chunk, while later chunks still run
/// ```
template <class R>
class AsyncMapResult : public AsyncResult<std::vector<R>> {
  using Base = AsyncResult<std::vector<R>>;

 public:
  /// An empty result, as AsyncResult's.
  AsyncMapResult() = default;
  /// \cond internal
  // `tasks` each produce a std::vector<R>; ordered: yield them in task order, else in completion order.
  AsyncMapResult(std::shared_ptr<detail::ClientCore> core, std::vector<detail::Task> tasks, bool ordered = true)
      : Base(core, tasks, concat(ordered)), ordered_(ordered) {}
  /// \endcond

  /// An input iterator over the results, from begin(); it compares equal to end() (a
  /// std::default_sentinel_t) after the last. Advancing it may wait for the next task, and rethrows
  /// that task's error (the remaining results are then not iterated).
  class iterator {
   public:
    ///@{
    /// The standard iterator types: an input iterator over const R.
    using iterator_category = std::input_iterator_tag;
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    using pointer = const R*;
    using reference = const R&;
    ///@}

    /// A past-the-end iterator.
    iterator() = default;
    /// The first result of m: waits for the first task to yield.
    explicit iterator(const AsyncMapResult* m) : m_(m) { advance_chunk(); }
    /// The current result, valid until the iterator moves past its task's chunk.
    reference operator*() const { return (*chunk_)[pos_]; }
    /// A pointer to the current result.
    pointer operator->() const { return &(*chunk_)[pos_]; }
    /// The next result; waits for its task when the current chunk is used up.
    iterator& operator++() {
      if (++pos_ >= chunk_->size()) advance_chunk();
      return *this;
    }
    /// As ++it (an input iterator keeps no copy of the previous position).
    void operator++(int) { ++*this; }
    /// True once every result has been yielded.
    friend bool operator==(const iterator& a, std::default_sentinel_t) { return a.m_ == nullptr; }

   private:
    void advance_chunk() {
      pos_ = 0;
      for (;;) {
        if (next_ >= m_->size()) {
          m_ = nullptr;
          return;
        }
        const detail::Task& t = m_->next_task(next_, done_);
        ++next_;
        if (auto e = detail::task_error(*t)) std::rethrow_exception(e);
        chunk_ = std::make_shared<std::vector<R>>(detail::task_value<std::vector<R>>(*t, "map result"));
        if (!chunk_->empty()) return;
      }
    }
    const AsyncMapResult* m_ = nullptr;
    std::shared_ptr<std::vector<R>> chunk_;
    std::size_t next_ = 0, pos_ = 0;
    std::vector<bool> done_;
  };

  /// The first result: waits for the first task to yield (in input order, or in completion order
  /// for an unordered map). Each call starts a new pass over the results.
  iterator begin() const { return iterator(this); }
  /// The end of the iteration.
  std::default_sentinel_t end() const { return {}; }

 private:
  static typename Base::Combine concat(bool ordered) {
    return [ordered](std::span<const detail::Task> tasks) {
      detail::throw_errors(tasks, detail::ErrorPolicy::composite);
      std::vector<R> out;
      std::vector<const detail::TaskState*> order;
      order.reserve(tasks.size());
      for (const auto& t : tasks) order.push_back(t.get());
      if (!ordered)
        std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->finished_ns < b->finished_ns; });
      for (const auto* t : order) {
        auto part = detail::task_value<std::vector<R>>(*t, "map result");
        if (out.empty()) out = std::move(part);
        else out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
      }
      return out;
    };
  }

  /// The k-th task to yield: task k when ordered; otherwise the first finished one not yet yielded.
  const detail::Task& next_task(std::size_t, std::vector<bool>& yielded) const {
    const auto tasks = this->all_tasks();
    if (yielded.empty()) yielded.assign(tasks.size(), false);
    if (ordered_) {
      for (std::size_t i = 0; i < tasks.size(); ++i)
        if (!yielded[i]) {
          this->core().wait(*tasks[i]);
          yielded[i] = true;
          return tasks[i];
        }
    }
    for (;;) {
      for (std::size_t i = 0; i < tasks.size(); ++i)
        if (!yielded[i] && tasks[i]->is_done()) {
          yielded[i] = true;
          return tasks[i];
        }
      this->core().progress(10'000'000);
    }
  }

  bool ordered_ = true;
};

}  // namespace cadre
