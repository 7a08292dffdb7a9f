// Socket addresses from what JS passes: a numeric IPv4/IPv6 host and a port, or a Unix path.
// Name resolution happens in JS (dns.lookup) before anything reaches native code.
#pragma once
#include <string>
#include <sys/socket.h>

namespace iapp {

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
};

// 0 or -errno (EINVAL: not a numeric address; ENAMETOOLONG: Unix path too long).
int MakeInetAddr(const std::string& host, int port, SockAddr* out);
int MakeUnixAddr(const std::string& path, SockAddr* out);
// Fills host/port (or path, port -1) from a sockaddr.
void DescribeAddr(const sockaddr* sa, socklen_t len, std::string* host, int* port);
// fd's local (or, with `peer`, remote) address as host, port and family (AF_*); false if it has
// none (not a socket, not connected).
bool SocketAddress(int fd, bool peer, std::string* host, int* port, int* family);

}  // namespace iapp
