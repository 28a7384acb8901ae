// The host memory gen may still allocate: /proc/meminfo's MemAvailable, capped by the memory cgroup the
// process runs in (a Slurm task under task/cgroup, a container, a systemd slice), whose limit the kernel
// enforces with the OOM killer long before the machine runs out.
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "gen/device.h"

namespace gen {

namespace {

std::string read_small(const std::string& path) {
  std::ifstream f(path);
  if (!f) return "";
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A byte count as cgroup files write it; "max" (v2, no limit) and anything unparsable are SIZE_MAX.
size_t parse_bytes(const std::string& text) {
  std::istringstream in(text);
  unsigned long long v = 0;
  if (!(in >> v) || v >= (1ULL << 62)) return SIZE_MAX;  // v1 writes 2^63 - page for "no limit"
  return size_t(v);
}

// A "NAME VALUE" line's value in a memory.stat text; 0 when absent.
size_t stat_value(const std::string& stat_text, const std::string& name) {
  std::istringstream in(stat_text);
  std::string key;
  unsigned long long v = 0;
  while (in >> key >> v) {
    if (key == name) return size_t(v);
  }
  return 0;
}

// What is left in the group at `dir`: limit - (usage - inactive file cache), as kubelet's "working set"
// counts it (the kernel reclaims that cache before it kills; MemAvailable counts it as free too).
// SIZE_MAX without a limit or without the files.
size_t left_in(const std::string& dir, bool v2) {
  const size_t limit = parse_bytes(read_small(dir + (v2 ? "/memory.max" : "/memory.limit_in_bytes")));
  if (limit == SIZE_MAX) return SIZE_MAX;
  size_t used = parse_bytes(read_small(dir + (v2 ? "/memory.current" : "/memory.usage_in_bytes")));
  if (used == SIZE_MAX) return SIZE_MAX;
  const size_t cache = stat_value(read_small(dir + "/memory.stat"), v2 ? "inactive_file" : "total_inactive_file");
  used = cache < used ? used - cache : 0;
  return used < limit ? limit - used : 0;
}

}  // namespace

size_t cgroup_memory_left(const std::string& proc_self_cgroup, const std::string& root) {
  std::istringstream in(proc_self_cgroup);
  std::string line;
  size_t left = SIZE_MAX;
  while (std::getline(in, line)) {
    // "ID:CONTROLLERS:PATH": v2 is "0::PATH"; v1's memory hierarchy names "memory" among its controllers.
    const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = "," + line.substr(a + 1, b - a - 1) + ",";
    const bool v2 = line.substr(0, a) == "0" && controllers == ",,";
    if (!v2 && controllers.find(",memory,") == std::string::npos) continue;
    const std::string base = root + (v2 ? "" : "/memory");
    // The group and each of its ancestors: the tightest of their limits applies.
    for (std::string path = line.substr(b + 1); !path.empty();) {
      left = std::min(left, left_in(base + (path == "/" ? "" : path), v2));
      if (path == "/") break;
      const size_t slash = path.find_last_of('/');
      path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
    }
  }
  return left;
}

size_t parse_mem_available(const std::string& meminfo_text) {
  std::istringstream in(meminfo_text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    unsigned long long kib = 0;
    std::string unit;
    // The kernel has always written kB here; any other unit means the format is not understood.
    if (!(fields >> kib >> unit) || unit != "kB" || kib > SIZE_MAX / 1024) return 0;
    return size_t(kib) * 1024;
  }
  return 0;
}

size_t host_memory_available() {
  const size_t meminfo = parse_mem_available(read_small("/proc/meminfo"));
  const size_t cgroup = cgroup_memory_left(read_small("/proc/self/cgroup"), "/sys/fs/cgroup");
  if (cgroup == SIZE_MAX) return meminfo;
  return meminfo == 0 ? cgroup : std::min(meminfo, cgroup);
}

}  // namespace gen
