// The only file that touches libuv. The loop's poller fd is watched by the worker's own libuv loop
// (so Node's timers, promises and modules keep working on loop threads), and a prepare hook runs
// just before libuv would block, to submit queued interest changes and deliver events produced
// outside a drain. libuv keeps its ABI stable within 1.x; keep every libuv call in here.
#pragma once
#include <node_api.h>

namespace iapp {

struct UvHooks {
  void (*on_ready)(void* arg);    // the poller fd is readable: drain it
  void (*on_prepare)(void* arg);  // libuv is about to poll: flush
  void* arg;
};

struct UvWatch;

// Starts watching `fd` for readability on env's libuv loop. Returns null and sets *err (-errno or
// a libuv error) on failure.
UvWatch* UvWatchStart(napi_env env, int fd, UvHooks hooks, int* err);
// Runs on_prepare once before the thread next blocks in libuv (idempotent until it runs).
void UvWatchWantPrepare(UvWatch* w);
// Runs on_prepare before every block while `on` (timers armed by plain stores from JS need it).
void UvWatchPrepareAlways(UvWatch* w, bool on);
// Also watches `fd` (the inbox's waker) directly in libuv, outside the poller: a message then
// wakes the thread through one eventfd, not through the nested epoll. 0 or a libuv error.
int UvWatchInbox(UvWatch* w, int fd, void (*on_inbox)(void* arg));
// Whether the watch keeps the libuv loop (and so the thread or process) alive. Default: yes.
void UvWatchRef(UvWatch* w, bool on);
// Stops watching the poller fd (the handles stay open until UvWatchClose).
void UvWatchPause(UvWatch* w);
// Stops and closes the handles. `done` (may be null) runs once libuv has released them.
void UvWatchClose(UvWatch* w, void (*done)(void* arg), void* arg);

}  // namespace iapp
