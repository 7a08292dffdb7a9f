#include "uv_glue.h"

#include <uv.h>

#include <initializer_list>

namespace iapp {

struct UvWatch {
  uv_poll_t poll;
  uv_prepare_t prepare;
  uv_poll_t inbox;
  bool inbox_on = false;
  void (*on_inbox)(void*) = nullptr;
  UvHooks hooks;
  int open_handles = 0;
  bool prepare_on = false;
  bool prepare_always = false;
  void (*done)(void*) = nullptr;
  void* done_arg = nullptr;
};

namespace {

void OnPoll(uv_poll_t* h, int status, int events) {
  auto* w = static_cast<UvWatch*>(h->data);
  // status < 0 means libuv saw an error on the poller fd itself; draining reports it.
  w->hooks.on_ready(w->hooks.arg);
}

void OnPrepare(uv_prepare_t* h) {
  auto* w = static_cast<UvWatch*>(h->data);
  if (!w->prepare_always) {
    uv_prepare_stop(&w->prepare);
    w->prepare_on = false;
  }
  w->hooks.on_prepare(w->hooks.arg);
}

void OnClosed(uv_handle_t* h) {
  auto* w = static_cast<UvWatch*>(h->data);
  if (--w->open_handles > 0) return;
  auto done = w->done;
  auto arg = w->done_arg;
  delete w;
  if (done) done(arg);
}

}  // namespace

UvWatch* UvWatchStart(napi_env env, int fd, UvHooks hooks, int* err) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    *err = UV_EINVAL;
    return nullptr;
  }
  auto* w = new UvWatch();
  w->hooks = hooks;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r != 0) {
    delete w;
    *err = r;
    return nullptr;
  }
  w->poll.data = w;
  w->open_handles = 1;
  uv_prepare_init(loop, &w->prepare);  // cannot fail
  w->prepare.data = w;
  w->open_handles = 2;
  uv_unref(reinterpret_cast<uv_handle_t*>(&w->prepare));
  r = uv_poll_start(&w->poll, UV_READABLE, OnPoll);
  if (r != 0) {
    *err = r;
    UvWatchClose(w, nullptr, nullptr);
    return nullptr;
  }
  return w;
}

void UvWatchWantPrepare(UvWatch* w) {
  if (w->prepare_on) return;
  w->prepare_on = true;
  uv_prepare_start(&w->prepare, OnPrepare);
}

int UvWatchInbox(UvWatch* w, int fd, void (*on_inbox)(void* arg)) {
  if (w->inbox_on) return UV_EEXIST;
  int r = uv_poll_init(w->poll.loop, &w->inbox, fd);
  if (r != 0) return r;
  w->inbox.data = w;
  w->on_inbox = on_inbox;
  w->inbox_on = true;
  ++w->open_handles;
  if (!uv_has_ref(reinterpret_cast<uv_handle_t*>(&w->poll))) uv_unref(reinterpret_cast<uv_handle_t*>(&w->inbox));
  return uv_poll_start(&w->inbox, UV_READABLE, [](uv_poll_t* h, int, int) {
    auto* uw = static_cast<UvWatch*>(h->data);
    uw->on_inbox(uw->hooks.arg);
  });
}

void UvWatchRef(UvWatch* w, bool on) {
  for (uv_poll_t* p : {&w->poll, &w->inbox}) {
    if (p == &w->inbox && !w->inbox_on) continue;
    auto* h = reinterpret_cast<uv_handle_t*>(p);
    if (on) uv_ref(h);
    else uv_unref(h);
  }
}

void UvWatchPrepareAlways(UvWatch* w, bool on) {
  w->prepare_always = on;
  if (on) UvWatchWantPrepare(w);
}

void UvWatchPause(UvWatch* w) {
  uv_poll_stop(&w->poll);
  if (w->inbox_on) uv_poll_stop(&w->inbox);
  uv_prepare_stop(&w->prepare);
  w->prepare_on = false;
  w->prepare_always = false;
}

void UvWatchClose(UvWatch* w, void (*done)(void*), void* arg) {
  w->done = done;
  w->done_arg = arg;
  uv_poll_stop(&w->poll);
  uv_prepare_stop(&w->prepare);
  if (w->inbox_on) {
    uv_poll_stop(&w->inbox);
    uv_close(reinterpret_cast<uv_handle_t*>(&w->inbox), OnClosed);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->prepare), OnClosed);
}

}  // namespace iapp
