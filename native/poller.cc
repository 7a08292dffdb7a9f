// What the epoll and kqueue backends share: the queue of watchers whose interest changed since the
// last Flush(). Each backend (poller_epoll.cc, poller_kqueue.cc) turns that queue into its own
// kernel calls.
#include <algorithm>

#include "poller.h"

namespace iapp {

Poller::~Poller() { Close(); }

void Poller::Update(Watcher* w) {
  if (w->queued || w->dead) return;
  w->queued = true;
  changes_.push_back(w);
  if (changes_.size() == 1 && on_change_) on_change_(on_change_arg_);
}

void Poller::Dequeue(Watcher* w) {
  if (w->queued) {
    w->queued = false;
    auto it = std::find(changes_.begin(), changes_.end(), w);
    if (it != changes_.end()) changes_.erase(it);
  }
}

size_t Poller::ReserveChanges(size_t n) {
  if (changes_.capacity() >= n) return 0;
  const size_t cap = n > 2 * changes_.capacity() ? n : 2 * changes_.capacity();  // amortized
  changes_.reserve(cap);
  flushing_.reserve(cap);
  return cap;
}

}  // namespace iapp
