/* cairn-mover: moves VM data into repositories: snapshots, chunks, restore points.
 * Wiring only: the service's description for the common runtime (libs/common/svc.h). */
#include "common/svc.h"

#include "events.h"

int main(int argc, char **argv)
{
	static const char *const topics[] = { "cairn.backup", NULL };
	struct mover_app app = { 0 };
	const struct svc_def def = {
		.name = "mover",
		.schema = "catalog",
		.default_http_port = 8103,
		.outbox = true,
		.topics = topics,
		.handler = mover_handle_event,
		.app = &app,
		.setup = mover_setup,
	};

	return svc_main(&def, argc, argv);
}
