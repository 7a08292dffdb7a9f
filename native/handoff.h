// Sockets in transit between loops, by token. A token is taken once; tokens of a runtime that
// were never adopted are closed when the runtime releases its group, so no fd is leaked.
#pragma once
#include <cstdint>
#include <memory>

#include "socket.h"

namespace iapp {

double StoreDetached(uint32_t group, std::unique_ptr<DetachedSocket> d);
// Null if the token is unknown or was already adopted.
std::unique_ptr<DetachedSocket> TakeDetached(double token);
// Closes the fds of `group`'s tokens nobody adopted; returns how many.
size_t CloseDetached(uint32_t group);

}  // namespace iapp
