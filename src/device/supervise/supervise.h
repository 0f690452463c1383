/* SPDX-License-Identifier: MIT */
#ifndef EDGEID_SUPERVISE_H
#define EDGEID_SUPERVISE_H

/* edgeidd supervise: start the daemons, restart them when they die. */
int supervise_main(int argc, char **argv);

#endif
