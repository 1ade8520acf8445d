// tsrun-init: `run --init`'s pid 1. It starts the command as its child,
// passes on every signal it gets, reaps every orphan the kernel gives it
// (a pid namespace's init inherits them all), and exits with the
// command's status (128+N if a signal N ended it), as tini does.
//
//   tsrun-init -- COMMAND [ARGS...]
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  int first = 1;
  if (first < argc && !strcmp(argv[first], "--")) first++;
  if (first >= argc) {
    fprintf(stderr, "usage: tsrun-init -- COMMAND [ARGS...]\n");
    return 2;
  }
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "tsrun-init: fork: %s\n", strerror(errno));
    return 125;
  }
  if (child == 0) {
    // Its own process group, in the foreground of the terminal if there is
    // one, so ^C reaches it and job control works.
    setpgid(0, 0);
    if (isatty(0)) tcsetpgrp(0, getpid());
    sigprocmask(SIG_SETMASK, &old, nullptr);
    execvp(argv[first], argv + first);
    int e = errno;
    fprintf(stderr, "tsrun-init: exec %s: %s\n", argv[first], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
  }
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      kill(child, sig);
      continue;
    }
    for (;;) {
      int status;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid == child) {
        // The command is done; what is left is killed with the namespace.
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
      }
    }
  }
}
