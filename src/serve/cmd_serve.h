// `gen serve`: the OpenAI-compatible server's command (serve/cmd_serve.cpp). main() dispatches to it
// with argv from "serve" on; it returns the exit code and throws gen::Error / InputError.
#pragma once

namespace gen {

int run_serve(int argc, char** argv);

}  // namespace gen
