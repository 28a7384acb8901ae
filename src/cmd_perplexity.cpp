// gen perplexity: placeholder while it is being written this session.
#include "gen/commands.h"
#include "gen/error.h"

namespace gen {
int run_perplexity(int, char**) { throw Error("gen perplexity is not written yet"); }
}  // namespace gen
