#include "handoff.h"

#include <mutex>
#include <unordered_map>

#include "sys.h"

namespace iapp {

namespace {
struct Entry {
  uint32_t group;
  std::unique_ptr<DetachedSocket> socket;
};
std::mutex g_mu;
double g_next = 1;
// Leaked on purpose, like the group registry: threads may use it while the process exits.
std::unordered_map<double, Entry>* g_tokens = new std::unordered_map<double, Entry>();
}  // namespace

double StoreDetached(uint32_t group, std::unique_ptr<DetachedSocket> d) {
  std::lock_guard<std::mutex> lock(g_mu);
  double t = g_next++;
  g_tokens->emplace(t, Entry{group, std::move(d)});
  return t;
}

std::unique_ptr<DetachedSocket> TakeDetached(double token) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_tokens->find(token);
  if (it == g_tokens->end()) return nullptr;
  auto d = std::move(it->second.socket);
  g_tokens->erase(it);
  return d;
}

size_t CloseDetached(uint32_t group) {
  std::lock_guard<std::mutex> lock(g_mu);
  size_t n = 0;
  for (auto it = g_tokens->begin(); it != g_tokens->end();) {
    if (it->second.group == group) {
      SysClose(it->second.socket->fd);
      it = g_tokens->erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

}  // namespace iapp
