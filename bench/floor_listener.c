/*
 * The benchmark's floor: the least a proc connector listener can do. It
 * subscribes (PROC_CN_MCAST_LISTEN, include/uapi/linux/cn_proc.h), reads
 * datagrams and printf()s one short line per fork/exec/exit, buffered, to
 * stdout. bench/floor.ts builds it with `cc` into a temporary directory and
 * runs it beside each listener during a storm: their CPU ÷ its CPU is the
 * "× C floor" column. Bench only: procwatch itself has no native build.
 */
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: recv() returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
  if (fd < 0) { perror("socket"); return 1; }
  int size = 16 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC };
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }
  struct {
    struct nlmsghdr nl;
    struct cn_msg cn;
    enum proc_cn_mcast_op op;
  } __attribute__((packed)) request;
  memset(&request, 0, sizeof request);
  request.nl.nlmsg_len = sizeof request;
  request.nl.nlmsg_type = NLMSG_DONE;
  request.nl.nlmsg_pid = getpid();
  request.cn.id.idx = CN_IDX_PROC;
  request.cn.id.val = CN_VAL_PROC;
  request.cn.len = sizeof request.op;
  request.op = PROC_CN_MCAST_LISTEN;
  if (send(fd, &request, sizeof request, 0) < 0) { perror("send"); return 1; }
  fprintf(stderr, "ready\n");
  static char buffer[1 << 16] __attribute__((aligned(8)));
  unsigned long lost = 0;
  while (!stop) {
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0) {
      lost++; /* ENOBUFS: the kernel dropped some; EINTR: a signal */
      continue;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buffer; NLMSG_OK(h, (size_t)n);
         h = NLMSG_NEXT(h, n)) {
      struct cn_msg *cn = NLMSG_DATA(h);
      struct proc_event *ev = (struct proc_event *)cn->data;
      switch (ev->what) {
      case PROC_EVENT_FORK:
        printf("fork %d %d\n", ev->event_data.fork.parent_tgid, ev->event_data.fork.child_pid);
        break;
      case PROC_EVENT_EXEC:
        printf("exec %d\n", ev->event_data.exec.process_tgid);
        break;
      case PROC_EVENT_EXIT:
        printf("exit %d %u\n", ev->event_data.exit.process_tgid, ev->event_data.exit.exit_code);
        break;
      default:
        break;
      }
    }
  }
  fflush(stdout);
  fprintf(stderr, "recv errors %lu\n", lost);
  return 0;
}
