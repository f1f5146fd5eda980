/* placeholder until its owner writes it */
typedef int vdi_placeholder_uring;
