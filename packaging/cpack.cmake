# The release's packages: a .deb and an .rpm that the package managers of the
# old distributions accept (scripts/package.sh runs `cpack` in the release
# build; the tarball it makes itself). Included from packaging/CMakeLists.txt.
#
#   Debian 7's dpkg 1.16: data in a gzip or xz tar (xz here), control.tar.gz.
#   RHEL 6's rpm 4.8: an xz payload (not zstd, which rpm 4.14+ may default to),
#   SHA-256 file digests, no build-id links (rpm 4.14+ adds them).
#
# Both install into /usr with the configuration under /etc: the SysV script
# (/etc/init.d/reuseportd, enabled at boot by the scripts in deb/ and rpm/),
# the systemd unit, the upstart job under /usr/share/reuseport/upstart.

set(REUSEPORT_PACKAGE_MAINTAINER "reuseport maintainers <maintainers@reuseport.invalid>" CACHE STRING
    "Maintainer of the .deb and .rpm packages (name <email>)")

set(CPACK_PACKAGE_NAME reuseport)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "${REUSEPORT_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_VENDOR "reuseport")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "SO_REUSEPORT for unmodified programs on Linux kernels before 3.9")
set(CPACK_PACKAGE_DESCRIPTION
    "reuseport lets several unmodified servers share one TCP or UDP port on Linux kernels that lack
SO_REUSEPORT (before 3.9): a broker, reuseportd, owns the real socket and hands each connection or
datagram to one of the servers, which run with libreuseport.so preloaded (reuseport-run).
The programs are static and run on any x86-64 Linux from 3.2; the shim loads into programs of any
glibc from 2.12 on.")
set(CPACK_GENERATOR "DEB;RPM")
# Final paths in the configured files (unit, init script): install with
# DESTDIR into the staging area rather than with the staging area as prefix.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CHECKSUM SHA256)

# .deb
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # reuseport_VERSION_amd64.deb
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE amd64)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6")
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${CMAKE_CURRENT_LIST_DIR}/deb/postinst;${CMAKE_CURRENT_LIST_DIR}/deb/prerm;${CMAKE_CURRENT_LIST_DIR}/deb/postrm;${CMAKE_CURRENT_LIST_DIR}/deb/conffiles")

# .rpm
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)  # reuseport-VERSION-1.x86_64.rpm
set(CPACK_RPM_PACKAGE_ARCHITECTURE x86_64)
set(CPACK_RPM_PACKAGE_RELEASE 1)
set(CPACK_RPM_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_RPM_PACKAGE_GROUP "System Environment/Daemons")
set(CPACK_RPM_PACKAGE_URL "")
set(CPACK_RPM_COMPRESSION_TYPE xz)
set(CPACK_RPM_SPEC_MORE_DEFINE
    "%define _binary_filedigest_algorithm 8
%define _build_id_links none
%define __os_install_post %{nil}
%define debug_package %{nil}")
set(CPACK_RPM_USER_FILELIST
    "%config(noreplace) /etc/reuseport/policy.conf"
    "%config /etc/init.d/reuseportd")
# Directories other packages own (filesystem, chkconfig/initscripts, systemd,
# cmake-filesystem):
# the package must not claim them, least of all /etc/init.d, a symbolic link
# on RHEL.
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
    /etc/init.d
    /usr/sbin
    /usr/lib/systemd
    /usr/lib/systemd/system
    /usr/lib/pkgconfig
    /usr/lib/cmake
    /usr/share/man
    /usr/share/man/man1
    /usr/share/man/man8)
set(CPACK_RPM_POST_INSTALL_SCRIPT_FILE "${CMAKE_CURRENT_LIST_DIR}/rpm/post")
set(CPACK_RPM_PRE_UNINSTALL_SCRIPT_FILE "${CMAKE_CURRENT_LIST_DIR}/rpm/preun")
set(CPACK_RPM_POST_UNINSTALL_SCRIPT_FILE "${CMAKE_CURRENT_LIST_DIR}/rpm/postun")

include(CPack)
