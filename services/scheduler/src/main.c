/* cairn-scheduler: jobs, schedules, sessions and tasks; turns due jobs into backup tasks.
 * Wiring only: the service's description for the common runtime (libs/common/svc.h). */
#include "common/svc.h"

#include "events.h"

int main(int argc, char **argv)
{
	static const char *const topics[] = { "cairn.backup", "cairn.repository", NULL };
	struct scheduler_app app = { 0 };
	const struct svc_def def = {
		.name = "scheduler",
		.schema = "jobs",
		.default_http_port = 8102,
		.outbox = true,
		.topics = topics,
		.handler = scheduler_handle_event,
		.app = &app,
		.setup = scheduler_setup,
	};

	return svc_main(&def, argc, argv);
}
