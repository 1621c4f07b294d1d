/* Main-loop glue private to softmmu/. */
#ifndef SOFTMMU_MAIN_LOOP_H
#define SOFTMMU_MAIN_LOOP_H

#include <glib.h>
#include "sen/machine.h"

/* A GSource that runs the machine's virtual-clock timers (with the VM lock) when due. */
GSource *main_loop_timer_source_new(Machine *m);

#endif
