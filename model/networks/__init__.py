"""The networks: the 3D magnitude-preserving U-Net (the diffusion model's eps_theta, after EDM2), its layers,
and the Swin UNETR bridge (eq. 8). Nothing here knows about sampling, volumes or files."""

NETWORK_NAMES = ("diffusion", "bridge")  # the weights manifest's names: eps_theta, and the bridge phi
WINDOW = (128, 128, 32)  # the window (x, y, z) both networks are trained and evaluated on
WINDOW_MULTIPLE = 32  # the bridge (Swin UNETR) halves each axis five times: every window size a multiple of this
