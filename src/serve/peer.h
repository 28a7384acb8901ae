// Whether the client of a request is still there, for requests that wait without writing (a
// non-streamed completion): cpp-httplib does not hand a handler its socket, so it is found by the
// connection's addresses, then peeked.
#pragma once
#include <string>

namespace gen::serve {

// The file descriptor of this process's TCP socket with these local and remote addresses; -1 if none.
int find_connection(const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port);

// False once the peer has closed the connection (an orderly close or a reset); true while it may still
// read (including when data it sent is waiting). fd -1: true.
bool peer_connected(int fd);

}  // namespace gen::serve
