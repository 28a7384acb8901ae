// gen info: placeholder while it is being written this session.
#include "gen/commands.h"
#include "gen/error.h"

namespace gen {
int run_info(int, char**) { throw Error("gen info is not written yet"); }
}  // namespace gen
