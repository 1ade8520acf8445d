// Passing one descriptor over a unix socket (SCM_RIGHTS): the pty master
// from the container to the runtime, the monitor or a --console-socket.
// Header-only and syscall-only, so the child after clone may use it too.
#pragma once

#include <string.h>
#include <sys/socket.h>

namespace tsrun {

union FdControl {
  char buf[CMSG_SPACE(sizeof(int))];
  struct cmsghdr align;
};

inline void fd_message(struct msghdr *msg, struct iovec *iov, char *byte, FdControl *ctl) {
  memset(msg, 0, sizeof *msg);
  memset(ctl, 0, sizeof *ctl);
  iov->iov_base = byte;
  iov->iov_len = 1;
  msg->msg_iov = iov;
  msg->msg_iovlen = 1;
  msg->msg_control = ctl->buf;
  msg->msg_controllen = sizeof ctl->buf;
}

// Sends fd with one byte of data; sendmsg's result.
inline ssize_t send_fd(int sock, int fd) {
  struct msghdr msg;
  struct iovec iov;
  char byte = 'T';
  FdControl ctl;
  fd_message(&msg, &iov, &byte, &ctl);
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

// The descriptor received (close-on-exec), -1 with errno on failure, or -2
// when a message came without one (or the peer closed).
inline int recv_fd(int sock, int flags) {
  struct msghdr msg;
  struct iovec iov;
  char byte;
  FdControl ctl;
  fd_message(&msg, &iov, &byte, &ctl);
  ssize_t r = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
  if (r < 0) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (r == 0 || !c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) return -2;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

}  // namespace tsrun
