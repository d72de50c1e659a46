/* cairn-stats: statistics and analyst views over every event of the platform.
 * Wiring only: the service's description for the common runtime (libs/common/svc.h). */
#include "common/svc.h"

#include "events.h"

int main(int argc, char **argv)
{
	static const char *const topics[] = { "cairn.identity", "cairn.jobs",       "cairn.backup",
		                              "cairn.restore",  "cairn.repository", NULL };
	struct stats_app app = { 0 };
	const struct svc_def def = {
		.name = "stats",
		.schema = "stats",
		.default_http_port = 8105,
		.outbox = false,
		.runtime_role = "cairn_stats_rt",
		.topics = topics,
		.handler = stats_handle_event,
		.app = &app,
		.setup = stats_setup,
	};

	return svc_main(&def, argc, argv);
}
