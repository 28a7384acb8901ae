// The GPU tests' main: without a usable CUDA device it says why and exits 77, which ctest reports as
// "skipped" (SKIP_RETURN_CODE). Listing the tests (ctest's discovery at build time) needs no device.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <string>

#include "gen/device.h"
#include "gen/model.h"

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing |= std::strncmp(argv[i], "--list", 6) == 0;
  std::string why;
  if (!listing && !gen::cuda_available(&why)) {
    std::printf("skipped: %s\n", why.c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
