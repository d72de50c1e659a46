/* cairn-mover: moves VM data into repositories: snapshots, chunks, restore points.
 * Wiring only: the service's description for the common runtime (libs/common/svc.h). */
#include "common/svc.h"

#include "app.h"

int main(int argc, char **argv)
{
	static const char *const topics[] = { "cairn.backup", NULL };
	static struct mover_app app;
	const struct svc_def def = {
		.name = "mover",
		.schema = "catalog",
		.default_http_port = 8103,
		.outbox = true,
		.runtime_role = "cairn_mover_rt",
		.topics = topics,
		.handler = mover_handle_event,
		.cfg_keys = mover_cfg_keys,
		.cfg_nkeys = mover_cfg_nkeys,
		.cfg = &app.cfg,
		.app = &app,
		.setup = mover_setup,
		.teardown = mover_teardown,
	};

	return svc_main(&def, argc, argv);
}
