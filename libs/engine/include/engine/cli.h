/* cli.h - the cairn-engine command line (backup, list, restore, verify), kept in the library
 * so tests can drive it; tools/engine.c is only main(). */
#ifndef ENGINE_CLI_H
#define ENGINE_CLI_H

#include <stdatomic.h>
#include <stdio.h>

/* Exit codes */
#define ENGINE_EXIT_OK 0
#define ENGINE_EXIT_FAIL 1      /* operation failed (I/O, keys, ...) */
#define ENGINE_EXIT_USAGE 2     /* bad command line */
#define ENGINE_EXIT_NOT_FOUND 3 /* restore point, disk, chunk or file missing */
#define ENGINE_EXIT_CORRUPT 4   /* verify/restore found damaged data */
#define ENGINE_EXIT_CANCELLED 5 /* interrupted (SIGINT/SIGTERM) */

/** @brief Run the CLI. argv[0] is the program name, argv[1] the command. JSON summaries go to
 *  out, usage/errors/progress to errs. cancel (may be NULL) is polled during long operations.
 *  Reads the master key from $CAIRN_MASTER_KEY_FILE. @returns an ENGINE_EXIT_* code. */
int engine_cli_main(int argc, char **argv, FILE *out, FILE *errs, const atomic_bool *cancel);

#endif
