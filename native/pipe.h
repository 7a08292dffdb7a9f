// socket -> socket: a pipe moves what one socket receives into another with no JS per chunk.
// On Linux the bytes go through a kernel pipe with splice(2) and are never copied to user space;
// elsewhere through a buffer with recv/send. Backpressure: the source is read only while the
// destination takes what was read; the pipe holds at most its capacity in between.
#pragma once
#include "platform.h"
#include <cstddef>
#include <cstdint>
#include <memory>
#include <sys/types.h>

#include "live.h"

namespace iapp {

class Loop;
class Socket;

class Pipe {
  Live<kLivePipe> live_;

 public:
  // Links src -> dst (same loop), held: src stops being read at once, and a kRecPipeHeld record
  // follows every data record of src already emitted, so JS can pass on what it holds before
  // Go() starts the moving. Null with *err (positive errno) if the kernel pipe cannot be made
  // or a socket is busy (already piped, pushing, ended, connecting). Bytes already queued on
  // dst go first.
  static Pipe* Start(Loop* loop, Socket* src, Socket* dst, double id, int* err, int* sys);
  bool held() const { return held_; }
  double id() const { return id_; }
  void Go();
  ~Pipe();

  // Moves bytes until src has nothing more to give, dst takes no more, or a budget is spent.
  void Pump();
  bool WantsRead() const;   // src should be polled for readability
  bool WantsWrite() const;  // dst should be polled for writability
  // A linked socket is closing (err: errno, or 0 for a clean close or destroy()).
  void SocketClosed(Socket* s, int err, int sys);
  // The loop is closing: unlink and free without telling JS.
  void Abandon();

 private:
  Pipe(Loop* loop, Socket* src, Socket* dst, double id) : loop_(loop), src_(src), dst_(dst), id_(id) {}
  void Done(int err, int sys);  // emits kRecPipe, unlinks both sockets, deletes this
  void Unlink();
  ssize_t In(size_t n);   // src -> pipe: bytes, 0 at end of file, or -errno
  ssize_t Out(size_t n);  // pipe -> dst: bytes or -errno

  Loop* loop_;
  Socket* src_;  // null once src reached end of file (or closed after it)
  Socket* dst_;
  double id_;
  uint64_t src_id_ = 0, dst_id_ = 0;
  size_t cap_ = 0, buffered_ = 0;
  bool held_ = true;
  bool src_eof_ = false;
  bool dst_blocked_ = false;
  uint64_t moved_ = 0;
#if defined(IAPP_HAVE_SPLICE)
  int p_[2] = {-1, -1};
#else
  std::unique_ptr<uint8_t[]> buf_;
  size_t rd_ = 0;
#endif
};

}  // namespace iapp
