#include "addr.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "sys.h"

namespace iapp {

int MakeInetAddr(const std::string& host, int port, SockAddr* out) {
  if (port < 0 || port > 65535) return -EINVAL;
  // inet_pton and if_nametoindex stop at a NUL: "127.0.0.1\0junk" would be taken as 127.0.0.1.
  if (host.find('\0') != std::string::npos) return -EINVAL;
  *out = SockAddr{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    out->len = sizeof(sockaddr_in);
    return 0;
  }
  *out = SockAddr{};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->ss);
  std::string h = host;
  // Zone ids (fe80::1%eth0) are resolved by name.
  std::string zone;
  auto pct = h.find('%');
  if (pct != std::string::npos) {
    zone = h.substr(pct + 1);
    h = h.substr(0, pct);
  }
  if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    if (!zone.empty()) v6->sin6_scope_id = if_nametoindex(zone.c_str());
    out->len = sizeof(sockaddr_in6);
    return 0;
  }
  return -EINVAL;
}

int MakeUnixAddr(const std::string& path, SockAddr* out) {
  *out = SockAddr{};
  auto* un = reinterpret_cast<sockaddr_un*>(&out->ss);
  if (path.empty()) return -EINVAL;
  // The kernel would take the path up to the NUL: a different file than the one asked for.
  if (path.find('\0') != std::string::npos) return -EINVAL;
  if (path.size() >= sizeof(un->sun_path)) return -ENAMETOOLONG;
  un->sun_family = AF_UNIX;
  memcpy(un->sun_path, path.data(), path.size());
  out->len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return 0;
}

void DescribeAddr(const sockaddr* sa, socklen_t len, std::string* host, int* port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  *port = -1;
  host->clear();
  if (sa->sa_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
    *host = buf;
    *port = ntohs(v4->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
    *host = buf;
    *port = ntohs(v6->sin6_port);
  } else if (sa->sa_family == AF_UNIX) {
    auto* un = reinterpret_cast<const sockaddr_un*>(sa);
    size_t max = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    *host = std::string(un->sun_path, strnlen(un->sun_path, max));
  }
}

bool SocketAddress(int fd, bool peer, std::string* host, int* port, int* family) {
  sockaddr_storage ss;
  unsigned len = sizeof ss;
  if (SysSockName(fd, peer, &ss, &len) < 0) return false;
  DescribeAddr(reinterpret_cast<sockaddr*>(&ss), len, host, port);
  *family = ss.ss_family;
  return true;
}

}  // namespace iapp
