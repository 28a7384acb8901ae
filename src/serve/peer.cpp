#include "serve/peer.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>

namespace gen::serve {

namespace {

// "ip:port" of a socket address (IPv4 or IPv6), "" for another family.
std::string address(const sockaddr_storage& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (a.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(in6->sin6_port));
  }
  return "";
}

bool matches(int fd, const std::string& local, const std::string& remote) {
  sockaddr_storage a{};
  socklen_t n = sizeof a;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a), &n) != 0 || address(a) != remote) return false;
  n = sizeof a;
  return getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n) == 0 && address(a) == local;
}

}  // namespace

int find_connection(const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port) {
  const std::string local = local_addr + ":" + std::to_string(local_port);
  const std::string remote = remote_addr + ":" + std::to_string(remote_port);
  DIR* d = opendir("/proc/self/fd");
  if (!d) return -1;
  int found = -1;
  while (const dirent* e = readdir(d)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(d)) continue;
    if (matches(int(fd), local, remote)) {
      found = int(fd);
      break;
    }
  }
  closedir(d);
  return found;
}

bool peer_connected(int fd) {
  if (fd < 0) return true;
  char c;
  const ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return true;
  if (n == 0) return false;
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

}  // namespace gen::serve
