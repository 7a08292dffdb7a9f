#include "live.h"

namespace iapp {

const char* const kLiveNames[kLiveCount] = {
    "loops", "sockets", "listeners", "udp", "children", "files", "pipes", "groups",
};

std::atomic<int64_t> g_live[kLiveCount];

}  // namespace iapp
