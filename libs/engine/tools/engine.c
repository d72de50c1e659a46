/* cairn-engine: backup, list, restore and verify disk images without the stack. */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "engine/cli.h"

static atomic_bool g_cancel;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&g_cancel, true);
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	return engine_cli_main(argc, argv, stdout, stderr, &g_cancel);
}
