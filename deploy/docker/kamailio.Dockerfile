# Kamailio from Debian (5.6, the version the tests check kamailio.cfg with), for the docker-compose example.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends kamailio \
    && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["kamailio"]
