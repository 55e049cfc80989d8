// exec: a process that holds members keeps the shim in its next image.
//
// A listener inherited across exec is a member's channel; without the shim in
// the new image it is an AF_UNIX socket that refuses everything a listener
// should do (nginx's binary upgrade passes only the variables its `env` lines
// name, and its new master then dies on setsockopt(SO_REUSEPORT)). So when a
// member fd survives the exec, the exec family gives the new image the shim's
// own variables back: LD_PRELOAD gains the shim's path if it lacks it, and
// each REUSEPORT_* variable the shim started with is added if it is absent.
// Nothing else in the environment changes, and an exec that passes on no
// member passes its environment untouched.
#ifndef REUSEPORT_SHIM_PROGRAM_EXEC_H_
#define REUSEPORT_SHIM_PROGRAM_EXEC_H_

namespace reuseport::shim {

// Copies the shim's own variables and path into static storage (before main).
void CaptureExecEnvironment();

int Execve(const char* path, char* const argv[], char* const envp[]);
int Execvpe(const char* file, char* const argv[], char* const envp[]);
int Fexecve(int fd, char* const argv[], char* const envp[]);

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_PROGRAM_EXEC_H_
