/* SPDX-License-Identifier: MIT */
/*
 * The edgeid command line: one entry point per noun. Each returns the
 * process exit status (0 success, 1 failure, 2 usage error).
 */
#ifndef EDGEID_CLI_H
#define EDGEID_CLI_H

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2

/* edgeid config apply|show|check ... (argv[0] is "config") */
int cli_config_main(int argc, char **argv);
/* edgeid tpm provisioning-info ... */
int cli_tpm_main(int argc, char **argv);
/* edgeid system status|logs|restart|stop|reprovision ... */
int cli_system_main(int argc, char **argv);
/* edgeid identity show|list ... */
int cli_identity_main(int argc, char **argv);

#endif
