"""Development aid (README, "Why depth ranking is blocked"): a numpy copy of the relief
stage's 1-D Lambertian inversion and anisotropic Fourier integration (src/relief.rs) run on
an exact icepick cone, to see which wall loses depth.

    python3 scripts/cone_sim.py DIAM_MM DEPTH_MM ELEVATION_DEG MODE

MODE: an integer k = cross-slope passes (the pipeline uses 1), or `oracle` = the true cross
slope. Prints the depth read against a ring at 2.5-4 radii; with `oracle` also the slope sums
of the lit and the turned-away wall against the truth, and the depth when either wall's (or
every) slope is replaced by the truth. Needs numpy.
"""
import sys

import numpy as np
D,dep,el,mode=float(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]),sys.argv[4]
unit=0.1; n=200; ss=4; az=0.0; e=np.radians(el); alpha=0.1
r0=D/2; c=n*unit/2
def prof(rho):
    rc=1/0.9; t=np.hypot(rho,0.05*rc); t0=0.05*rc
    return np.clip((rc-t)/(rc-t0),0,1)
def Z(x,y): return -dep*prof(np.hypot(x-c,y-c)/r0)
l=np.array([np.cos(e)*np.cos(az),-np.cos(e)*np.sin(az),np.sin(e)])
I=np.zeros((n,n)); ZV=np.zeros((n,n)); ZT=np.zeros((n,n))
h=1e-3
iy,ix=np.mgrid[0:n,0:n].astype(float)
for sy in range(ss):
    for sx in range(ss):
        x=(ix+(sx+.5)/ss)*unit; y=(iy+(sy+.5)/ss)*unit
        zx=(Z(x+h,y)-Z(x-h,y))/(2*h); zy=(Z(x,y+h)-Z(x,y-h))/(2*h)
        nn=np.sqrt(1+zx**2+zy**2)
        ndl=(-zx*l[0]-zy*l[1]+l[2])/nn
        I+=np.maximum(ndl,0)+alpha; ZV+=zy; ZT+=Z(x,y)
I/=ss*ss; ZV/=ss*ss; ZT/=ss*ss
m=np.clip(I-alpha,0,1)  # n.l
se,ce=np.sin(e),np.cos(e)
def slope(m,zv):
    q2=1+zv**2; a=ce*ce-m*m
    disc=np.maximum(se*se*ce*ce-a*(se*se-m*m*q2),0)
    with np.errstate(all='ignore'):
        t=np.where(np.abs(a)<1e-9,(se*se-m*m*q2)/(2*se*ce),(se*ce-np.sqrt(disc))/a)
    return np.clip(t,-4,4)
# u = (cos a, -sin a) = +x; z_u = dz/dx (per mm); in px units slope dimensionless
def integ(g,eps=0.03,cut=400.0):
    H,W=g.shape; p=64
    G=np.zeros((H+2*p,W+2*p)); G[p:p+H,p:p+W]=g-g.mean()
    F=np.fft.fft2(G); ky=2*np.pi*np.fft.fftfreq(H+2*p)[:,None]; kx=2*np.pi*np.fft.fftfreq(W+2*p)[None,:]
    ku=kx; kv2=ky**2; kc2=(2*np.pi/cut)**2
    den=ku**2+eps*kv2+kc2
    Zf=np.where(den>0,-1j*ku*F/den,0)
    z=np.real(np.fft.ifft2(Zf))[p:p+H,p:p+W]*(1+np.sqrt(eps))
    return z
def gradv(z): return np.gradient(z,axis=0)
if mode=='oracle': g=slope(m,ZV); z=integ(g)
else:
    k=int(mode); z=integ(slope(m,np.zeros_like(m)))
    for i in range(k): g=slope(m,gradv(z)); z=integ(g)
z=z*unit
ring=(np.hypot((ix+.5)*unit-c,(iy+.5)*unit-c)); rm=(ring>2.5*r0+.5)&(ring<4*r0+1.5)
print(mode, 'depth ratio %.2f'%((z[rm].mean()-z.min())/dep), 'true-grid ratio %.2f'%((ZT[rm].mean()-ZT.min())/dep))
# diagnostics: true pixel-mean slope along u
GX=np.zeros((n,n))
for sy in range(ss):
    for sx in range(ss):
        x=(ix+(sx+.5)/ss)*unit; y=(iy+(sy+.5)/ss)*unit
        GX+=(Z(x+h,y)-Z(x-h,y))/(2*h)
GX/=ss*ss
if mode != "oracle":
    g=slope(m,gradv(z/unit)) if int(mode)>0 else slope(m,np.zeros_like(m))
sh=m<=1e-6
lit=GX<-0.05; away=GX>0.05
print(' shadow px',sh.sum(),' lit sum est %.1f true %.1f'%(g[lit].sum(),GX[lit].sum()),' away sum est %.1f true %.1f'%(g[away].sum(),GX[away].sum()))
if mode != "oracle":
    sys.exit(0)
g=slope(m,ZV)
g2=g.copy(); g2[sh]=GX[sh]; z2=integ(g2)*unit
print(' shadow oracle depth ratio %.2f'%((z2[rm].mean()-z2.min())/dep))
g3=g.copy(); g3[lit]=GX[lit]; z3=integ(g3)*unit
print(' lit oracle depth ratio %.2f'%((z3[rm].mean()-z3.min())/dep))
z4=integ(GX)*unit
print(' all-true-slope integration ratio %.2f'%((z4[rm].mean()-z4.min())/dep))
