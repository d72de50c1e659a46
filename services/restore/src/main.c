/* cairn-restore: restore sessions: whole VMs, vApps, files and database items.
 * Wiring only: the service's description for the common runtime (libs/common/svc.h). */
#include "common/svc.h"

#include "events.h"

int main(int argc, char **argv)
{
	static const char *const topics[] = { "cairn.restore", NULL };
	struct restore_app app = { 0 };
	const struct svc_def def = {
		.name = "restore",
		.schema = "restores",
		.default_http_port = 8104,
		.outbox = true,
		.topics = topics,
		.handler = restore_handle_event,
		.app = &app,
		.setup = restore_setup,
	};

	return svc_main(&def, argc, argv);
}
