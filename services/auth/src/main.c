/* cairn-auth: identity, tenancy, tokens and audit.
 * Wiring only: the service's description for the common runtime (libs/common/svc.h). */
#include "common/svc.h"

int main(int argc, char **argv)
{
	const struct svc_def def = {
		.name = "auth",
		.schema = "identity",
		.default_http_port = 8101,
		.outbox = true,
	};

	return svc_main(&def, argc, argv);
}
