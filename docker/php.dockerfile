# hh-stem-parent: base
# PHP: the CLI, Composer, PHPUnit, PHP-CS-Fixer, PHPStan, Pint, Xdebug and PCOV.
ARG BASE=hh-base
FROM ${BASE}
USER root
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        php-cli php-curl php-mbstring php-xml php-zip php-xdebug php-pcov composer \
    && rm -rf /var/lib/apt/lists/*
# Xdebug installed but off unless asked for (XDEBUG_MODE=debug); PCOV likewise.
ENV XDEBUG_MODE=off
USER coder
ENV COMPOSER_HOME=/home/coder/.composer
ENV PATH=/opt/hh/bin:/home/coder/.composer/vendor/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN composer global require --no-interaction \
        phpunit/phpunit friendsofphp/php-cs-fixer phpstan/phpstan laravel/pint \
    && composer clear-cache
