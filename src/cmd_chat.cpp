// gen chat: placeholder while it is being written this session.
#include "gen/commands.h"
#include "gen/error.h"

namespace gen {
int run_chat(int, char**) { throw Error("gen chat is not written yet"); }
}  // namespace gen
