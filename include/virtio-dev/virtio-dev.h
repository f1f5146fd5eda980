/* SPDX-License-Identifier: MIT */
/* libvirtio-dev: the umbrella header. Include this one. */
#ifndef VIRTIO_DEV_H
#define VIRTIO_DEV_H

#include "common.h"
#include "mem.h"
#include "irq.h"
#include "queue.h"
#include "device.h"
#include "driver.h"
#include "bus.h"
#include "mmio.h"
#include "blk.h"
#include "vhost-user.h"
#include "pci.h"
#include "virtio-pci.h"
#include "pcie.h"

#endif
