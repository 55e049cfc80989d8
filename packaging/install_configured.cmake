# Runs at install time (cmake --install, make install), included by the
# install(CODE) rules of packaging/CMakeLists.txt.
#
# The unit's ExecStart and the .pc file's includedir name installed paths. They
# are filled in here, from the prefix actually installed to, rather than at
# configure time: `cmake --install build --prefix /opt/x` must give a unit that
# starts /opt/x/sbin/reuseportd. DESTDIR is not part of those paths (file(INSTALL)
# adds it to where files go), so staged package builds get the final paths.

# GNUInstallDirs' rule for CMAKE_INSTALL_FULL_<dir>, applied to the prefix in
# effect now: absolute dirs stay, /etc (and /var) are special for / and /usr.
function(reuseport_full_dir out dir kind)
  if(IS_ABSOLUTE "${dir}")
    set(full "${dir}")
  elseif(kind STREQUAL "SYSCONFDIR" AND (CMAKE_INSTALL_PREFIX STREQUAL "/usr" OR CMAKE_INSTALL_PREFIX STREQUAL "/"))
    set(full "/${dir}")
  elseif(CMAKE_INSTALL_PREFIX STREQUAL "/")
    set(full "/${dir}")
  else()
    set(full "${CMAKE_INSTALL_PREFIX}/${dir}")
  endif()
  string(REGEX REPLACE "/+$" "" full "${full}")
  string(REGEX REPLACE "//+" "/" full "${full}")
  set(${out} "${full}" PARENT_SCOPE)
endfunction()

# Configures `template` with @VAR@ substitution and installs it as
# <destination>/<name> (executable if a fourth argument says PROGRAM). The
# configured copy is written under a name of its own (several installs may run
# at once from one build tree, e.g. parallel tests) and removed afterwards.
function(reuseport_install_configured template destination name)
  string(RANDOM LENGTH 12 suffix)
  set(staged "${REUSEPORT_PACKAGING_BINARY_DIR}/install-${suffix}/${name}")
  configure_file("${template}" "${staged}" @ONLY)
  if(ARGV3 STREQUAL "PROGRAM")
    file(INSTALL DESTINATION "${destination}" TYPE PROGRAM FILES "${staged}")
  else()
    file(INSTALL DESTINATION "${destination}" TYPE FILE FILES "${staged}")
  endif()
  file(REMOVE_RECURSE "${REUSEPORT_PACKAGING_BINARY_DIR}/install-${suffix}")
endfunction()

# A configuration file the administrator may have edited is not overwritten:
# the new version goes beside it as <name>.dist, as dpkg would offer it.
function(reuseport_install_config_file source destination name)
  set(target "$ENV{DESTDIR}${destination}/${name}")
  if(EXISTS "${target}")
    file(SHA256 "${target}" have)
    file(SHA256 "${source}" want)
    if(NOT have STREQUAL want)
      message(STATUS "Keeping: ${target} (edited); new version: ${target}.dist")
      file(INSTALL DESTINATION "${destination}" TYPE FILE FILES "${source}" RENAME "${name}.dist")
      return()
    endif()
  endif()
  file(INSTALL DESTINATION "${destination}" TYPE FILE FILES "${source}")
endfunction()

reuseport_full_dir(REUSEPORT_FULL_SBINDIR "${REUSEPORT_SBINDIR}" SBINDIR)
reuseport_full_dir(REUSEPORT_FULL_SYSCONFDIR "${REUSEPORT_SYSCONFDIR}" SYSCONFDIR)
reuseport_full_dir(REUSEPORT_FULL_INCLUDEDIR "${REUSEPORT_INCLUDEDIR}" INCLUDEDIR)
reuseport_full_dir(REUSEPORT_FULL_LIBDIR "${REUSEPORT_LIBDIR}" LIBDIR)
reuseport_full_dir(REUSEPORT_FULL_DATADIR "${REUSEPORT_DATADIR}" DATADIR)
reuseport_full_dir(REUSEPORT_FULL_UNITDIR "${REUSEPORT_SYSTEMD_UNIT_DIR}" UNITDIR)
set(REUSEPORT_PREFIX "${CMAKE_INSTALL_PREFIX}")

reuseport_install_configured("${REUSEPORT_PACKAGING_SOURCE_DIR}/reuseportd.service.in"
                             "${REUSEPORT_FULL_UNITDIR}" reuseportd.service)
reuseport_install_configured("${REUSEPORT_PACKAGING_SOURCE_DIR}/init/reuseportd.sysv.in"
                             "${REUSEPORT_FULL_SYSCONFDIR}/init.d" reuseportd PROGRAM)
reuseport_install_configured("${REUSEPORT_PACKAGING_SOURCE_DIR}/init/reuseportd.upstart.in"
                             "${REUSEPORT_FULL_DATADIR}/reuseport/upstart" reuseportd.conf)
reuseport_install_configured("${REUSEPORT_PACKAGING_SOURCE_DIR}/reuseport.pc.in"
                             "${REUSEPORT_FULL_LIBDIR}/pkgconfig" reuseport.pc)
reuseport_install_config_file("${REUSEPORT_PACKAGING_SOURCE_DIR}/policy.conf"
                              "${REUSEPORT_FULL_SYSCONFDIR}/reuseport" policy.conf)
